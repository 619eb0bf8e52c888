/**
 * The receive side of the wire, as `ws` has its receiver.js: frames in, whole messages and control
 * frames out. It reads only when asked (`read()`), so the connection decides how far ahead of the
 * application it goes. Fragments are reassembled into one growing buffer: a fragmented message
 * costs about its own size (tests/unit/ws_fragment_memory_test.ts), never an object per fragment.
 */

import {
  applyMask,
  decodeUtf8,
  FrameError,
  newFrameHeader,
  OP_BINARY,
  OP_CLOSE,
  OP_CONTINUATION,
  OP_PING,
  OP_PONG,
  parseFrameHeader,
} from "./frame.ts";
import { type BufferedConn, UnexpectedEofError } from "./io.ts";
import type { WsMessage } from "./types.ts";

/** A Ping, Pong or Close, handed to the connection as soon as it is read. */
export interface ControlFrame {
  readonly type: "ping" | "pong" | "close";
  readonly payload: Uint8Array;
}

/** First capacity of a fragmented message's buffer; it doubles as fragments arrive. */
const FRAGMENT_BUFFER_INITIAL = 16 * 1024;
/** Fragments up to this size are copied byte by byte (no subarray, no promise). */
const SMALL_FRAGMENT = 64;

export class MessageReader {
  readonly #io: BufferedConn;
  /** A server requires masked frames, a client unmasked ones. */
  readonly #expectMasked: boolean;
  readonly #maxMessageSize: number;
  readonly #header = newFrameHeader();
  /** The fragmented message being reassembled: one growing buffer, bytes [0, #fragmentSize). */
  #fragments: Uint8Array | null = null;
  #fragmentOpcode = 0;
  #fragmentSize = 0;

  constructor(io: BufferedConn, expectMasked: boolean, maxMessageSize: number) {
    this.#io = io;
    this.#expectMasked = expectMasked;
    this.#maxMessageSize = maxMessageSize;
  }

  /**
   * The next data message or control frame. Rejects with FrameError on a protocol violation (its
   * closeCode says which Close to send) and UnexpectedEofError when the socket ends first.
   */
  async read(): Promise<WsMessage | ControlFrame> {
    const io = this.#io;
    const h = this.#header;
    for (;;) {
      while (!parseFrameHeader(io.buf, io.start, io.end, this.#expectMasked, h)) {
        if (!(await io.fill())) {
          throw new UnexpectedEofError(
            io.buffered > 0 ? "inside a frame" : "without a Close frame",
          );
        }
      }
      io.start += h.headerLength;
      const opcode = h.opcode;
      const length = h.payloadLength;
      if (opcode >= OP_CLOSE) {
        const pending = this.#readPayload(length);
        const payload = pending instanceof Promise ? await pending : pending;
        const type = opcode === OP_PING ? "ping" : opcode === OP_PONG ? "pong" : "close";
        return { type, payload };
      }
      if (opcode === OP_CONTINUATION) {
        if (!this.#fragments) throw new FrameError(1002, "continuation frame without a message");
      } else if (this.#fragments) {
        throw new FrameError(1002, "new message inside a fragmented message");
      }
      if (this.#fragmentSize + length > this.#maxMessageSize) {
        throw new FrameError(1009, `message larger than ${this.#maxMessageSize} bytes`);
      }
      if (h.fin && !this.#fragments) {
        const pending = this.#readPayload(length);
        return toMessage(opcode, pending instanceof Promise ? await pending : pending);
      }
      if (!this.#fragments) {
        this.#fragments = new Uint8Array(Math.min(this.#maxMessageSize, FRAGMENT_BUFFER_INITIAL));
        this.#fragmentOpcode = opcode;
        this.#fragmentSize = 0;
      }
      // Straight into the message buffer: a fragment costs its bytes, never an object of its own.
      const pending = this.#readFragment(length);
      if (pending) await pending;
      if (h.fin) return this.#takeFragments();
    }
  }

  #takeFragments(): WsMessage {
    const all = this.#fragments as Uint8Array;
    const size = this.#fragmentSize;
    this.#fragments = null;
    this.#fragmentSize = 0;
    // A message with much spare room (a small one in the first buffer) keeps only its bytes.
    const data = all.length - size > size / 4 ? all.slice(0, size) : all.subarray(0, size);
    return toMessage(this.#fragmentOpcode, data);
  }

  /** Appends the current frame's payload to #fragments; a promise only when it is not buffered. */
  #readFragment(length: number): Promise<void> | undefined {
    const size = this.#fragmentSize;
    let buf = this.#fragments as Uint8Array;
    if (size + length > buf.length) {
      // Doubling keeps the copies O(bytes); the 1009 check in read() bounds the size.
      const next = new Uint8Array(
        Math.min(this.#maxMessageSize, Math.max(size + length, buf.length * 2)),
      );
      next.set(buf.subarray(0, size));
      this.#fragments = buf = next;
    }
    this.#fragmentSize = size + length;
    const io = this.#io;
    const h = this.#header;
    if (length <= SMALL_FRAGMENT && io.buffered >= length) {
      // Byte by byte: no view object per fragment, so a flood of tiny ones allocates nothing.
      const src = io.buf;
      const from = io.start;
      const m = h.mask;
      for (let i = 0; i < length; i++) {
        buf[size + i] = h.masked ? src[from + i] ^ m[i & 3] : src[from + i];
      }
      io.start += length;
      return undefined;
    }
    const dst = buf.subarray(size, size + length);
    if (io.buffered >= length) {
      dst.set(io.buf.subarray(io.start, io.start + length));
      io.start += length;
      if (h.masked) applyMask(dst, h.mask);
      return undefined;
    }
    return io.readInto(dst).then(() => {
      if (h.masked) applyMask(dst, h.mask);
    });
  }

  /** The payload of the current frame; synchronous when it is already buffered (the common case). */
  #readPayload(length: number): Uint8Array | Promise<Uint8Array> {
    const io = this.#io;
    if (io.buffered >= length) {
      const payload = io.buf.slice(io.start, io.start + length);
      io.start += length;
      if (this.#header.masked) applyMask(payload, this.#header.mask);
      return payload;
    }
    return this.#readPayloadSlow(length);
  }

  async #readPayloadSlow(length: number): Promise<Uint8Array> {
    const payload = new Uint8Array(length);
    await this.#io.readInto(payload);
    if (this.#header.masked) applyMask(payload, this.#header.mask);
    return payload;
  }
}

function toMessage(opcode: number, data: Uint8Array): WsMessage {
  if (opcode === OP_BINARY) return { type: "binary", data };
  const text = decodeUtf8(data);
  if (text === null) throw new FrameError(1007, "text message is not valid UTF-8");
  return { type: "text", data: text };
}
