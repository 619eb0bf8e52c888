/**
 * The WebSocket connection state machine over a BufferedConn: frames come in through a
 * MessageReader and go out through a FrameWriter; this file decides when to read and how closing
 * goes (`readyState`).
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

import { closeQuietly } from "../async.ts";
import {
  encodeClosePayload,
  FrameError,
  OP_BINARY,
  OP_CLOSE,
  OP_PING,
  OP_PONG,
  OP_TEXT,
  parseClosePayload,
} from "./frame.ts";
import type { BufferedConn } from "./io.ts";
import { type ControlFrame, MessageReader } from "./message_reader.ts";
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

/**
 * Where the closing handshake stands, like `ws`'s readyState: "peer-closed" when the peer's Close
 * came first and ours is still to be sent, "closing" once ours is queued (no more sends), "closed"
 * once the socket is dropped.
 */
export type ReadyState = "open" | "peer-closed" | "closing" | "closed";

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
const noop = () => {};

export class WebSocketConn implements MessageSocket {
  /** The negotiated subprotocol ("" when none). */
  readonly protocol: string;
  /** Response headers on a client, request headers on a server. */
  readonly headers: Headers;
  readonly remoteAddr: Deno.NetAddr;
  readonly closed: Promise<void>;

  readonly #io: BufferedConn;
  readonly #closeTimeoutMs: number;
  #state: ReadyState = "open";
  #resolveClosed: () => void = noop;

  // Receive side.
  readonly #reader: MessageReader;
  #waiters: Waiter[] = [];
  /** The read loop, while one runs (`#pumping`); at most one at a time. */
  #pump: Promise<void> = Promise.resolve();
  #pumping = false;
  /** A data message read on behalf of ping() or close() while nobody was receiving. */
  #parked: WsMessage | null = null;
  #closeInfo: CloseInfo | null = null;
  #failure: WsError | null = null;
  #readEnded: () => void = noop;
  readonly #readEndedPromise: Promise<void>;

  // Send side.
  readonly #writer: FrameWriter;
  #pongPayload: Uint8Array | null = null;
  #pings = new Set<PendingPing>();
  /** Our closing handshake, once close() has started it. */
  #closing: Promise<void> | null = null;

  constructor(init: WebSocketConnInit) {
    const client = init.role === "client";
    this.#io = init.io;
    this.#reader = new MessageReader(
      init.io,
      !client,
      init.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE,
    );
    this.#writer = new FrameWriter(init.io, client);
    this.protocol = init.protocol;
    this.headers = init.headers;
    this.remoteAddr = init.remoteAddr;
    this.#closeTimeoutMs = init.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    this.#readEndedPromise = new Promise((resolve) => this.#readEnded = resolve);
  }

  get readyState(): ReadyState {
    return this.#state;
  }

  get closeInfo(): CloseInfo | null {
    return this.#closeInfo;
  }

  get closeSent(): boolean {
    return this.#state === "closing" || this.#isClosed();
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
    if (this.#isClosed()) {
      return Promise.reject(new WsError("closed", "connection closed"));
    }
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.#startPump();
    });
  }

  send(data: Uint8Array | string): Promise<void> {
    if (this.closeSent) {
      return Promise.reject(new WsError("closed", "send after close"));
    }
    if (typeof data === "string") return this.#enqueue(OP_TEXT, encoder.encode(data));
    return this.#enqueue(OP_BINARY, data);
  }

  ping(timeoutMs: number): Promise<void> {
    // A failed connection is closing or closed already; a peer-closed one sends no Pong.
    if (this.#state !== "open") {
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
    if (this.closeSent) return this.#closing ?? this.closed;
    this.#state = "closing";
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
    if (this.#pumping || this.#isClosed()) return;
    this.#pumping = true;
    this.#pump = this.#runPump();
  }

  async #runPump(): Promise<void> {
    try {
      while (this.#wantsRead() && !this.#closeInfo && !this.#failure) {
        const item = await this.#reader.read();
        if (item.type !== "text" && item.type !== "binary") {
          this.#onControl(item);
          continue;
        }
        const waiter = this.#waiters.shift();
        if (waiter) waiter.resolve(item);
        else this.#parked = item;
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

  /**
   * Someone is receiving, or (with no message parked) a ping() awaits its Pong or our close() the
   * peer's Close.
   */
  #wantsRead(): boolean {
    return this.#waiters.length > 0 ||
      ((this.#state === "closing" || this.#pings.size > 0) && this.#parked === null);
  }

  #onControl(frame: ControlFrame): void {
    if (frame.type === "ping") this.#answerPing(frame.payload);
    else if (frame.type === "pong") this.#settlePings(null);
    else {
      this.#closeInfo = parseClosePayload(frame.payload);
      if (this.#state === "open") this.#state = "peer-closed";
      // No Pong follows a Close.
      this.#settlePings(new WsError("closed", "peer closed before answering the ping"));
      this.#readEnded();
    }
  }

  async #onReadError(err: unknown): Promise<void> {
    if (err instanceof FrameError) {
      const code = err.closeCode === 1009 ? "message_too_big" : "protocol_error";
      this.#fail(new WsError(code, `WebSocket ${code.replaceAll("_", " ")}: ${err.message}`));
      await this.#failClose(err.closeCode, err.message);
      return;
    }
    if (this.#isClosed()) {
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
    if (this.closeSent) {
      this.#drop();
      return;
    }
    this.#state = "closing";
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
    if (this.closeSent) return;
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
    if (this.#isClosed()) throw new WsError("closed", "connection closed");
    try {
      await this.#writer.writeFrame(opcode, payload);
    } catch (err) {
      if (this.#isClosed()) {
        throw new WsError("closed", "connection closed", { cause: err });
      }
      const detail = err instanceof Error ? err.message : String(err);
      const lost = new WsError("connection_lost", `connection lost: ${detail}`, { cause: err });
      this.#drop();
      throw lost;
    }
  }

  // ---- teardown ----

  /** A method, not a field test: the state changes across awaits. */
  #isClosed(): boolean {
    return this.#state === "closed";
  }

  /** Drops the socket once; `closed` resolves after the reader and writer have settled. */
  #drop(): void {
    if (this.#isClosed()) return;
    this.#state = "closed";
    closeQuietly(this.#io.conn);
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
