/**
 * The mux wire format: many message streams over one WebSocket (the carrier).
 *
 * Every carrier message is BINARY: byte 0 the type, bytes 1..4 the stream id (uint32 big-endian,
 * >= 1), then the payload. A TEXT carrier message is a protocol error.
 * - 0x01 OPEN    payload empty. Only the opener side sends it; ids strictly increase from 1 and
 *                are never reused.
 * - 0x02 TEXT    payload = one whole UTF-8 text message of that stream (invalid UTF-8: protocol
 *                error).
 * - 0x03 BINARY  payload = one whole binary message of that stream.
 * - 0x04 CREDIT  payload = uint32 BE: bytes the receiver adds to the other side's send window.
 * - 0x05 CLOSE   payload = uint16 BE code + UTF-8 reason (like a WebSocket Close); empty = 1005.
 * - 0x06 RESET   payload empty: the stream was dropped (like a TCP drop without Close).
 * - 0x07 BLOCKED payload empty: the sender has data its window does not cover (once per CREDIT).
 *
 * Flow control counts TEXT+BINARY messages, each costing its payload plus MUX_MESSAGE_COST bytes
 * (so empty messages cannot queue without end): each stream starts with MUX_WINDOW bytes per
 * direction (implicit at OPEN, not negotiated, so both ends must use the same window), and the
 * receiver returns bytes with CREDIT as the application takes messages. A receiver may credit more
 * than it got back (its window grows on BLOCKED, see stream.ts); the sender only sees more credit.
 * A CREDIT of 0 is a protocol error. At most one CREDIT and one BLOCKED per stream are in the
 * carrier's send queue at a time, so a peer that stops reading cannot make them pile up.
 */
import { AztunnelError } from "../errors.ts";

export const MUX_HEADER_BYTES = 5;
/** The largest TEXT/BINARY payload: the tunnel's data message limit. */
export const MUX_MAX_MESSAGE = 32768;
export const MUX_MAX_FRAME = MUX_HEADER_BYTES + MUX_MAX_MESSAGE;
/** What a TEXT/BINARY message costs against the window beyond its payload. */
export const MUX_MESSAGE_COST = 64;
/** The initial window per stream and direction. */
export const MUX_WINDOW = 256 * 1024;
/** A send window credited beyond this is a protocol error. */
export const MUX_MAX_WINDOW = 16 * 1024 * 1024;
/** The most a receive window grows to (a bulk stream on a long round trip). */
export const MUX_STREAM_MAX_WINDOW = 4 * 1024 * 1024;
/** The most all of a session's windows together grow beyond their initial size. */
export const MUX_SESSION_GROWTH = 8 * 1024 * 1024;
/** The smallest window a session may use: one largest message fits. */
export const MUX_MIN_WINDOW = MUX_MAX_MESSAGE + MUX_MESSAGE_COST;

export const FRAME_OPEN = 0x01;
export const FRAME_TEXT = 0x02;
export const FRAME_BINARY = 0x03;
export const FRAME_CREDIT = 0x04;
export const FRAME_CLOSE = 0x05;
export const FRAME_RESET = 0x06;
export const FRAME_BLOCKED = 0x07;

export type MuxErrorCode = "mux_closed" | "mux_protocol" | "mux_too_big" | "mux_role";

/** A mux failure: the session has ended, the peer broke the protocol, a payload is too big. */
export class MuxError extends AztunnelError {
  declare readonly code: MuxErrorCode;
  constructor(code: MuxErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.name = "MuxError";
  }
}

export type MuxFrame =
  | { readonly type: "open"; readonly id: number }
  | { readonly type: "text"; readonly id: number; readonly data: string; readonly size: number }
  | { readonly type: "binary"; readonly id: number; readonly data: Uint8Array }
  | { readonly type: "credit"; readonly id: number; readonly bytes: number }
  | { readonly type: "close"; readonly id: number; readonly code: number; readonly reason: string }
  | { readonly type: "reset"; readonly id: number }
  | { readonly type: "blocked"; readonly id: number };

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function header(type: number, id: number, payloadBytes: number): Uint8Array {
  if (!Number.isInteger(id) || id < 1 || id > 0xffff_ffff) {
    throw new RangeError(`invalid stream id ${id}`);
  }
  const out = new Uint8Array(MUX_HEADER_BYTES + payloadBytes);
  out[0] = type;
  new DataView(out.buffer).setUint32(1, id);
  return out;
}

/** A TEXT or BINARY frame around an already encoded payload; throws MuxError "mux_too_big". */
export function encodeData(type: "text" | "binary", id: number, payload: Uint8Array): Uint8Array {
  if (payload.length > MUX_MAX_MESSAGE) {
    throw new MuxError("mux_too_big", `message of ${payload.length} bytes > ${MUX_MAX_MESSAGE}`);
  }
  const out = header(type === "text" ? FRAME_TEXT : FRAME_BINARY, id, payload.length);
  out.set(payload, MUX_HEADER_BYTES);
  return out;
}

/** Codes a CLOSE may carry, as in a WebSocket Close (RFC 6455 §7.4). */
export function isValidCloseCode(code: number): boolean {
  if (code >= 3000 && code <= 4999) return true;
  return code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006;
}

/**
 * A CLOSE frame; 1005 and 1006 go out as an empty payload (read back as 1005). Throws RangeError
 * for a code one may not send or a reason over 123 bytes, like a WebSocket Close.
 */
export function encodeClose(id: number, code: number, reason: string): Uint8Array {
  if (code === 1005 || code === 1006) return header(FRAME_CLOSE, id, 0);
  if (!Number.isInteger(code) || !isValidCloseCode(code)) {
    throw new RangeError(`invalid close code ${code}`);
  }
  const text = utf8.encode(reason);
  if (text.length > 123) throw new RangeError("close reason longer than 123 bytes");
  const out = header(FRAME_CLOSE, id, 2 + text.length);
  out[5] = code >>> 8;
  out[6] = code & 0xff;
  out.set(text, 7);
  return out;
}

export function encodeFrame(frame: MuxFrame): Uint8Array {
  switch (frame.type) {
    case "open":
      return header(FRAME_OPEN, frame.id, 0);
    case "text":
      return encodeData("text", frame.id, utf8.encode(frame.data));
    case "binary":
      return encodeData("binary", frame.id, frame.data);
    case "credit": {
      if (!Number.isInteger(frame.bytes) || frame.bytes < 0 || frame.bytes > 0xffff_ffff) {
        throw new RangeError(`invalid credit ${frame.bytes}`);
      }
      const out = header(FRAME_CREDIT, frame.id, 4);
      new DataView(out.buffer).setUint32(5, frame.bytes);
      return out;
    }
    case "close":
      return encodeClose(frame.id, frame.code, frame.reason);
    case "reset":
      return header(FRAME_RESET, frame.id, 0);
    case "blocked":
      return header(FRAME_BLOCKED, frame.id, 0);
  }
}

function protocol(reason: string): MuxError {
  return new MuxError("mux_protocol", reason);
}

/** Parses one carrier message; throws MuxError "mux_protocol" for anything malformed. */
export function decodeFrame(msg: Uint8Array): MuxFrame {
  if (msg.length < MUX_HEADER_BYTES) throw protocol(`short frame of ${msg.length} bytes`);
  const view = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  const type = msg[0];
  const id = view.getUint32(1);
  const payload = msg.subarray(MUX_HEADER_BYTES);
  if (id === 0) throw protocol("stream id 0");
  if (payload.length > MUX_MAX_MESSAGE) throw protocol(`payload of ${payload.length} bytes`);
  switch (type) {
    case FRAME_OPEN:
    case FRAME_RESET:
    case FRAME_BLOCKED:
      if (payload.length !== 0) throw protocol(`payload on type ${type}`);
      return {
        type: type === FRAME_OPEN ? "open" : type === FRAME_RESET ? "reset" : "blocked",
        id,
      };
    case FRAME_TEXT: {
      let data: string;
      try {
        data = strictUtf8.decode(payload);
      } catch {
        throw protocol("text message is not valid UTF-8");
      }
      return { type: "text", id, data, size: payload.length };
    }
    case FRAME_BINARY:
      return { type: "binary", id, data: payload };
    case FRAME_CREDIT:
      if (payload.length !== 4) throw protocol(`credit payload of ${payload.length} bytes`);
      return { type: "credit", id, bytes: view.getUint32(MUX_HEADER_BYTES) };
    case FRAME_CLOSE:
      return decodeClose(id, payload);
    default:
      throw protocol(`unknown frame type ${type}`);
  }
}

function decodeClose(id: number, payload: Uint8Array): MuxFrame {
  if (payload.length === 0) return { type: "close", id, code: 1005, reason: "" };
  if (payload.length === 1) throw protocol("close payload of 1 byte");
  const code = (payload[0] << 8) | payload[1];
  if (!isValidCloseCode(code)) throw protocol(`invalid close code ${code}`);
  try {
    return { type: "close", id, code, reason: strictUtf8.decode(payload.subarray(2)) };
  } catch {
    throw protocol("close reason is not valid UTF-8");
  }
}
