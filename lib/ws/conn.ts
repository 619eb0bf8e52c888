/**
 * The WebSocket connection state machine over a BufferedConn.
 *
 * Reading is pull-based: frames are read from the socket only while a `receive()` (or a closing
 * handshake started by `close()`) is waiting, so a slow consumer slows the peer down through TCP
 * and memory stays bounded by the read buffer plus one message. Control frames are handled as they
 * are read: a Ping is answered with a Pong, a Pong settles pending `ping()` calls. A pending
 * `ping()` (or `close()`, see below) also reads by itself when nobody is receiving, but never
 * drops data: it parks at most one message for the next `receive()` and reads no further until
 * that message is taken. A peer that keeps sending while the application does not read therefore
 * makes `ping()` time out, which is the truth about that path.
 *
 * Closing, the half-closed states:
 * - We call `close()`: our Close is queued after the data already being sent; no more sends. We keep
 *   reading (and `receive()` keeps returning data, none is ever discarded) until the peer's Close,
 *   then drop the socket. If nobody is calling `receive()`, `close()` reads by itself, parking one
 *   message as described above; should the peer send more than that, `close()` ends at its deadline
 *   (closeTimeoutMs) unless the application drains with `receive()`.
 * - The peer's Close arrives first: `receive()` resolves `null` and `closeInfo` is set, but we do NOT
 *   answer with Close automatically. The application may keep sending, then calls `close()` (any
 *   code, e.g. the peer's own to forward it transparently), which sends our Close and drops the
 *   socket. An application that never calls `close()` or `closeNow()` leaks the socket.
 * - A protocol violation by the peer sends Close 1002/1007/1009 and drops the socket; `receive()`
 *   rejects with WsError "protocol_error" or "message_too_big".
 */

import {
  applyMask,
  decodeUtf8,
  encodeClosePayload,
  FrameError,
  newFrameHeader,
  OP_BINARY,
  OP_CLOSE,
  OP_CONTINUATION,
  OP_PING,
  OP_PONG,
  OP_TEXT,
  parseClosePayload,
  parseFrameHeader,
} from "./frame.ts";
import { type BufferedConn, UnexpectedEofError } from "./io.ts";
import { FrameWriter } from "./writer.ts";
import { WsError } from "./errors.ts";
import type { CloseInfo, MessageSocket, WsMessage } from "./types.ts";

export const DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024;
export const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;
/** How long a failing connection waits for its Close frame to drain before dropping the socket. */
const FAIL_LINGER_MS = 1_000;

export interface WebSocketConnInit {
  io: BufferedConn;
  role: "client" | "server";
  protocol: string;
  headers: Headers;
  remoteAddr: Deno.NetAddr;
  maxMessageSize?: number;
  closeTimeoutMs?: number;
}

interface Waiter {
  resolve(msg: WsMessage | null): void;
  reject(err: unknown): void;
}

interface PendingPing {
  resolve(): void;
  reject(err: unknown): void;
  timer: ReturnType<typeof setTimeout>;
}

const encoder = new TextEncoder();
const CONTROL = Symbol("control frame");
/** First capacity of a fragmented message's buffer; it doubles as fragments arrive. */
const FRAGMENT_BUFFER_INITIAL = 16 * 1024;
/** Fragments up to this size are copied byte by byte (no subarray, no promise). */
const SMALL_FRAGMENT = 64;
const noop = () => {};

export class WebSocketConn implements MessageSocket {
  /** The negotiated subprotocol ("" when none). */
  readonly protocol: string;
  /** Response headers on a client, request headers on a server. */
  readonly headers: Headers;
  readonly remoteAddr: Deno.NetAddr;
  readonly closed: Promise<void>;

  readonly #io: BufferedConn;
  readonly #client: boolean;
  readonly #maxMessageSize: number;
  readonly #closeTimeoutMs: number;
  readonly #header = newFrameHeader();
  #resolveClosed: () => void = noop;

  // Receive side.
  #waiters: Waiter[] = [];
  #pump: Promise<void> = Promise.resolve();
  #pumping = false;
  #draining = false;
  /** A data message read on behalf of ping() while nobody was receiving. */
  #parked: WsMessage | null = null;
  /** The fragmented message being reassembled: one growing buffer, bytes [0, #fragmentSize). */
  #fragments: Uint8Array | null = null;
  #fragmentOpcode = 0;
  #fragmentSize = 0;
  #closeInfo: CloseInfo | null = null;
  #failure: WsError | null = null;
  #readEnded: () => void = noop;
  readonly #readEndedPromise: Promise<void>;

  // Send side.
  readonly #writer: FrameWriter;
  #pongPayload: Uint8Array | null = null;
  #pings = new Set<PendingPing>();
  #closeSent = false;
  #closing: Promise<void> | null = null;
  #dropped = false;

  constructor(init: WebSocketConnInit) {
    this.#io = init.io;
    this.#client = init.role === "client";
    this.#writer = new FrameWriter(init.io, this.#client);
    this.protocol = init.protocol;
    this.headers = init.headers;
    this.remoteAddr = init.remoteAddr;
    this.#maxMessageSize = init.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    this.#closeTimeoutMs = init.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    this.#readEndedPromise = new Promise((resolve) => this.#readEnded = resolve);
  }

  get closeInfo(): CloseInfo | null {
    return this.#closeInfo;
  }

  get closeSent(): boolean {
    return this.#closeSent;
  }

  receive(): Promise<WsMessage | null> {
    const parked = this.#parked;
    if (parked) {
      this.#parked = null;
      // The slot is free again: a close() or ping() waiting behind it may read on.
      if (this.#wantsRead()) this.#startPump();
      return Promise.resolve(parked);
    }
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closeInfo) return Promise.resolve(null);
    if (this.#dropped) return Promise.reject(new WsError("closed", "connection closed"));
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.#startPump();
    });
  }

  send(data: Uint8Array | string): Promise<void> {
    if (this.#closeSent) {
      return Promise.reject(new WsError("closed", "send after close"));
    }
    if (typeof data === "string") return this.#enqueue(OP_TEXT, encoder.encode(data));
    return this.#enqueue(OP_BINARY, data);
  }

  ping(timeoutMs: number): Promise<void> {
    if (this.#closeSent || this.#closeInfo || this.#failure) {
      return Promise.reject(new WsError("closed", "ping after close"));
    }
    return new Promise((resolve, reject) => {
      const entry: PendingPing = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#pings.delete(entry);
          reject(new WsError("ping_timeout", `no pong within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.#pings.add(entry);
      this.#enqueue(OP_PING, new Uint8Array(0)).catch((err) => {
        if (this.#pings.delete(entry)) {
          clearTimeout(entry.timer);
          reject(err);
        }
      });
      this.#startPump();
    });
  }

  close(code = 1000, reason = ""): Promise<void> {
    let payload: Uint8Array;
    try {
      payload = encodeClosePayload(code, reason);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.#closing) return this.#closing;
    if (this.#closeSent) return this.closed;
    this.#closeSent = true;
    this.#closing = this.#closeHandshake(payload);
    return this.#closing;
  }

  closeNow(): void {
    this.#drop();
  }

  async #closeHandshake(payload: Uint8Array): Promise<void> {
    const timer = setTimeout(() => this.#drop(), this.#closeTimeoutMs);
    try {
      await this.#enqueue(OP_CLOSE, payload);
      if (!this.#closeInfo && !this.#failure) {
        this.#draining = true;
        this.#startPump();
        await this.#readEndedPromise;
      }
    } catch {
      // The socket is gone already: nothing left to hand-shake with.
    } finally {
      clearTimeout(timer);
      this.#drop();
    }
    await this.closed;
  }

  // ---- receive side ----

  #startPump(): void {
    if (this.#pumping || this.#dropped) return;
    this.#pumping = true;
    this.#pump = this.#runPump();
  }

  async #runPump(): Promise<void> {
    try {
      while (this.#wantsRead() && !this.#closeInfo && !this.#failure) {
        const msg = await this.#readMessage();
        if (msg === null) break;
        if (msg === CONTROL) continue;
        const waiter = this.#waiters.shift();
        if (waiter) waiter.resolve(msg);
        else this.#parked = msg;
      }
      if (this.#closeInfo && !this.#failure) {
        for (const w of this.#waiters.splice(0)) w.resolve(null);
      }
    } catch (err) {
      await this.#onReadError(err);
    } finally {
      // Cleared synchronously with the loop exit so a receive() made right after cannot be missed.
      this.#pumping = false;
    }
  }

  #wantsRead(): boolean {
    return this.#waiters.length > 0 ||
      ((this.#draining || this.#pings.size > 0) && this.#parked === null);
  }

  /** The next data message, null at the peer's Close, CONTROL after a Ping or Pong. */
  async #readMessage(): Promise<WsMessage | null | typeof CONTROL> {
    const io = this.#io;
    const h = this.#header;
    for (;;) {
      while (!parseFrameHeader(io.buf, io.start, io.end, !this.#client, h)) {
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
        if (opcode === OP_PING) this.#answerPing(payload);
        else if (opcode === OP_PONG) this.#settlePings(null);
        else {
          this.#closeInfo = parseClosePayload(payload);
          // No Pong follows a Close.
          this.#settlePings(new WsError("closed", "peer closed before answering the ping"));
          this.#readEnded();
          return null;
        }
        return CONTROL;
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
      if (h.fin) {
        const all = this.#fragments;
        const size = this.#fragmentSize;
        this.#fragments = null;
        this.#fragmentSize = 0;
        // A message with much spare room (a small one in the first buffer) keeps only its bytes.
        const data = all.length - size > size / 4 ? all.slice(0, size) : all.subarray(0, size);
        return toMessage(this.#fragmentOpcode, data);
      }
    }
  }

  /** Appends the current frame's payload to #fragments; a promise only when it is not buffered. */
  #readFragment(length: number): Promise<void> | undefined {
    const size = this.#fragmentSize;
    let buf = this.#fragments as Uint8Array;
    if (size + length > buf.length) {
      // Doubling keeps the copies O(bytes); the 1009 check above bounds the size.
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

  async #onReadError(err: unknown): Promise<void> {
    if (err instanceof FrameError) {
      const code = err.closeCode === 1009 ? "message_too_big" : "protocol_error";
      this.#fail(new WsError(code, `WebSocket ${code.replaceAll("_", " ")}: ${err.message}`));
      await this.#failClose(err.closeCode, err.message);
      return;
    }
    if (this.#dropped) {
      this.#fail(new WsError("closed", "connection closed"));
      return;
    }
    this.#closeInfo ??= { code: 1006, reason: "" };
    const detail = err instanceof Error ? err.message : String(err);
    this.#fail(new WsError("connection_lost", `connection lost: ${detail}`, { cause: err }));
    this.#drop();
  }

  #fail(err: WsError): void {
    this.#failure ??= err;
    for (const w of this.#waiters.splice(0)) w.reject(this.#failure);
    this.#readEnded();
  }

  /** Sends our Close with the error code, half-closes, and drains until the peer hangs up. */
  async #failClose(code: number, reason: string): Promise<void> {
    if (this.#closeSent) {
      this.#drop();
      return;
    }
    this.#closeSent = true;
    const timer = setTimeout(() => this.#drop(), FAIL_LINGER_MS);
    try {
      const short = reason.length > 100 ? reason.slice(0, 100) : reason;
      await this.#enqueue(OP_CLOSE, encodeClosePayload(code, short));
      // Closing with unread input makes the kernel send RST, which can destroy our Close frame
      // before the peer reads it; so read until the peer closes (bounded by the timer).
      await this.#io.conn.closeWrite();
      while (await this.#io.conn.read(this.#io.buf) !== null) { /* discard */ }
    } catch {
      // Dropped by the timer or by the peer: either way we are done.
    } finally {
      clearTimeout(timer);
      this.#drop();
    }
  }

  // ---- send side ----

  #enqueue(opcode: number, payload: Uint8Array): Promise<void> {
    return this.#writer.queue(() => this.#writeFrame(opcode, payload));
  }

  #answerPing(payload: Uint8Array): void {
    if (this.#closeSent) return;
    // Only the latest Ping needs a Pong (RFC 6455 §5.5.3): a Ping flood cannot queue Pongs.
    const scheduled = this.#pongPayload !== null;
    this.#pongPayload = payload;
    if (scheduled) return;
    this.#writer.queue(() => {
      const body = this.#pongPayload ?? new Uint8Array(0);
      this.#pongPayload = null;
      return this.#writeFrame(OP_PONG, body);
    }).catch(noop);
  }

  #settlePings(err: WsError | null): void {
    for (const p of this.#pings) {
      clearTimeout(p.timer);
      if (err) p.reject(err);
      else p.resolve();
    }
    this.#pings.clear();
  }

  /** One frame through the writer, with socket failures mapped to WsError. */
  async #writeFrame(opcode: number, payload: Uint8Array): Promise<void> {
    if (this.#dropped) throw new WsError("closed", "connection closed");
    try {
      await this.#writer.writeFrame(opcode, payload);
    } catch (err) {
      if (this.#dropped) throw new WsError("closed", "connection closed", { cause: err });
      const detail = err instanceof Error ? err.message : String(err);
      const lost = new WsError("connection_lost", `connection lost: ${detail}`, { cause: err });
      this.#drop();
      throw lost;
    }
  }

  // ---- teardown ----

  /** Drops the socket once; `closed` resolves after the reader and writer have settled. */
  #drop(): void {
    if (this.#dropped) return;
    this.#dropped = true;
    this.#closeSent = true;
    try {
      this.#io.conn.close();
    } catch {
      // Already closed by the runtime.
    }
    const gone = new WsError("closed", "connection closed");
    this.#settlePings(gone);
    if (!this.#pumping) {
      for (const w of this.#waiters.splice(0)) w.reject(this.#failure ?? gone);
    }
    this.#readEnded();
    const settle = async () => {
      while (this.#pumping) await this.#pump;
      await this.#writer.idle;
    };
    settle().then(() => this.#resolveClosed());
  }
}

function toMessage(opcode: number, data: Uint8Array): WsMessage {
  if (opcode === OP_BINARY) return { type: "binary", data };
  const text = decodeUtf8(data);
  if (text === null) throw new FrameError(1007, "text message is not valid UTF-8");
  return { type: "text", data: text };
}
