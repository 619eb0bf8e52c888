/**
 * RFC 6455 frame encoding and decoding as pure functions over bytes (no sockets), so the wire
 * format can be tested byte for byte.
 */

export const OP_CONTINUATION = 0x0;
export const OP_TEXT = 0x1;
export const OP_BINARY = 0x2;
export const OP_CLOSE = 0x8;
export const OP_PING = 0x9;
export const OP_PONG = 0xa;

/** Largest frame header: 2 + 8 (64-bit length) + 4 (mask). */
export const MAX_HEADER_SIZE = 14;

/** A violation of RFC 6455 found in incoming bytes; `closeCode` is what we answer with. */
export class FrameError extends Error {
  readonly closeCode: number;
  constructor(closeCode: number, message: string) {
    super(message);
    this.name = "FrameError";
    this.closeCode = closeCode;
  }
}

/** A decoded frame header. Reused across frames by the reader to avoid per-frame allocation. */
export interface FrameHeader {
  fin: boolean;
  opcode: number;
  masked: boolean;
  /** The 4 masking-key bytes (meaningful only when `masked`). */
  readonly mask: Uint8Array;
  payloadLength: number;
  headerLength: number;
}

export function newFrameHeader(): FrameHeader {
  return {
    fin: false,
    opcode: 0,
    masked: false,
    mask: new Uint8Array(4),
    payloadLength: 0,
    headerLength: 0,
  };
}

/**
 * Decodes the header at `buf[start..end)`. Returns false when more bytes are needed; throws
 * FrameError on anything RFC 6455 forbids. `expectMasked` is true on a server (client frames
 * must be masked) and false on a client (server frames must not be).
 */
export function parseFrameHeader(
  buf: Uint8Array,
  start: number,
  end: number,
  expectMasked: boolean,
  out: FrameHeader,
): boolean {
  if (end - start < 2) return false;
  const b0 = buf[start];
  const b1 = buf[start + 1];
  if ((b0 & 0x70) !== 0) throw new FrameError(1002, "reserved bits set");
  const opcode = b0 & 0x0f;
  const fin = (b0 & 0x80) !== 0;
  if (opcode >= 0x8) {
    if (opcode > OP_PONG) throw new FrameError(1002, `unknown opcode ${opcode}`);
    if (!fin) throw new FrameError(1002, "fragmented control frame");
    if ((b1 & 0x7f) > 125) throw new FrameError(1002, "control frame payload over 125 bytes");
  } else if (opcode > OP_BINARY) {
    throw new FrameError(1002, `unknown opcode ${opcode}`);
  }
  const masked = (b1 & 0x80) !== 0;
  if (masked !== expectMasked) {
    throw new FrameError(1002, masked ? "masked frame from server" : "unmasked frame from client");
  }
  let len = b1 & 0x7f;
  let pos = start + 2;
  if (len === 126) {
    if (end - pos < 2) return false;
    len = (buf[pos] << 8) | buf[pos + 1];
    pos += 2;
  } else if (len === 127) {
    if (end - pos < 8) return false;
    const hi = ((buf[pos] << 24) | (buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3]) >>> 0;
    const lo =
      ((buf[pos + 4] << 24) | (buf[pos + 5] << 16) | (buf[pos + 6] << 8) | buf[pos + 7]) >>>
      0;
    if (hi >= 0x80000000) throw new FrameError(1002, "payload length has the top bit set");
    // Above 2^53 the length is not exactly representable; nothing that large is acceptable anyway.
    if (hi > 0x1fffff) throw new FrameError(1009, "payload length too large");
    len = hi * 0x100000000 + lo;
    pos += 8;
  }
  if (masked) {
    if (end - pos < 4) return false;
    const m = out.mask;
    m[0] = buf[pos];
    m[1] = buf[pos + 1];
    m[2] = buf[pos + 2];
    m[3] = buf[pos + 3];
    pos += 4;
  }
  out.fin = fin;
  out.opcode = opcode;
  out.masked = masked;
  out.payloadLength = len;
  out.headerLength = pos - start;
  return true;
}

/** Header size for a payload of `length` bytes. */
export function frameHeaderSize(length: number, masked: boolean): number {
  const base = length < 126 ? 2 : length < 0x10000 ? 4 : 10;
  return masked ? base + 4 : base;
}

/** Writes a frame header at `out[offset..]` and returns its size. */
export function encodeFrameHeader(
  out: Uint8Array,
  offset: number,
  opcode: number,
  fin: boolean,
  length: number,
  mask: Uint8Array | null,
): number {
  let pos = offset;
  out[pos++] = (fin ? 0x80 : 0) | opcode;
  const maskBit = mask ? 0x80 : 0;
  if (length < 126) {
    out[pos++] = maskBit | length;
  } else if (length < 0x10000) {
    out[pos++] = maskBit | 126;
    out[pos++] = length >>> 8;
    out[pos++] = length & 0xff;
  } else {
    out[pos++] = maskBit | 127;
    const hi = Math.floor(length / 0x100000000);
    const lo = length >>> 0;
    out[pos++] = hi >>> 24;
    out[pos++] = (hi >>> 16) & 0xff;
    out[pos++] = (hi >>> 8) & 0xff;
    out[pos++] = hi & 0xff;
    out[pos++] = lo >>> 24;
    out[pos++] = (lo >>> 16) & 0xff;
    out[pos++] = (lo >>> 8) & 0xff;
    out[pos++] = lo & 0xff;
  }
  if (mask) {
    out[pos++] = mask[0];
    out[pos++] = mask[1];
    out[pos++] = mask[2];
    out[pos++] = mask[3];
  }
  return pos - offset;
}

const rotated = new Uint8Array(4);
const rotated32 = new Uint32Array(rotated.buffer);

/**
 * XORs `data` in place with the 4-byte `mask`, starting at mask byte `phase` (so a payload can be
 * processed in pieces). Works on aligned 32-bit words for the bulk. Returns the next phase.
 */
export function applyMask(data: Uint8Array, mask: Uint8Array, phase = 0): number {
  const n = data.length;
  let i = 0;
  if (n >= 16) {
    const head = (4 - (data.byteOffset & 3)) & 3;
    for (; i < head; i++) data[i] ^= mask[(phase + i) & 3];
    const words = (n - i) >>> 2;
    rotated[0] = mask[(phase + i) & 3];
    rotated[1] = mask[(phase + i + 1) & 3];
    rotated[2] = mask[(phase + i + 2) & 3];
    rotated[3] = mask[(phase + i + 3) & 3];
    const key = rotated32[0];
    const view = new Uint32Array(data.buffer, data.byteOffset + i, words);
    for (let w = 0; w < words; w++) view[w] ^= key;
    i += words * 4;
  }
  for (; i < n; i++) data[i] ^= mask[(phase + i) & 3];
  return (phase + n) & 3;
}

/**
 * A whole frame in a fresh buffer (header + payload, masked when `mask` is given). The caller's
 * payload is copied, never modified. The payload starts 4-byte aligned so masking uses words.
 */
export function encodeFrame(
  opcode: number,
  payload: Uint8Array,
  mask: Uint8Array | null,
  fin = true,
): Uint8Array {
  const hlen = frameHeaderSize(payload.length, mask !== null);
  const pad = (4 - (hlen & 3)) & 3;
  const buf = new Uint8Array(pad + hlen + payload.length);
  encodeFrameHeader(buf, pad, opcode, fin, payload.length, mask);
  const body = buf.subarray(pad + hlen);
  body.set(payload);
  if (mask) applyMask(body, mask);
  return buf.subarray(pad);
}

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Decodes UTF-8 strictly (RFC 6455 requires failing on invalid text); null when invalid. */
export function decodeUtf8(data: Uint8Array): string | null {
  try {
    return strictUtf8.decode(data);
  } catch {
    return null;
  }
}

/** True for codes a peer may put in a Close frame (RFC 6455 §7.4 plus the IANA-registered 1012–1014). */
export function isValidCloseCode(code: number): boolean {
  if (code >= 3000 && code <= 4999) return true;
  return code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006;
}

/**
 * The payload of a Close frame. 1005 ("no status") and 1006 ("abnormal") are never sent on the wire:
 * they produce an empty body. Throws RangeError for codes one may not send or a reason over 123 bytes.
 */
export function encodeClosePayload(code: number, reason: string): Uint8Array {
  if (code === 1005 || code === 1006) return new Uint8Array(0);
  if (!Number.isInteger(code) || !isValidCloseCode(code)) {
    throw new RangeError(`invalid close code ${code}`);
  }
  const text = utf8.encode(reason);
  if (text.length > 123) throw new RangeError("close reason longer than 123 bytes");
  const out = new Uint8Array(2 + text.length);
  out[0] = code >>> 8;
  out[1] = code & 0xff;
  out.set(text, 2);
  return out;
}

/** Decodes a received Close payload; throws FrameError (1002 bad code/length, 1007 bad UTF-8). */
export function parseClosePayload(payload: Uint8Array): { code: number; reason: string } {
  if (payload.length === 0) return { code: 1005, reason: "" };
  if (payload.length === 1) throw new FrameError(1002, "close payload of 1 byte");
  const code = (payload[0] << 8) | payload[1];
  if (!isValidCloseCode(code)) throw new FrameError(1002, `invalid close code ${code}`);
  const reason = decodeUtf8(payload.subarray(2));
  if (reason === null) throw new FrameError(1007, "close reason is not valid UTF-8");
  return { code, reason };
}
