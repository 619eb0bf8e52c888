/**
 * One stream of a mux session: a MessageSocket with the semantics of lib/ws/conn.ts, so the tunnel
 * code (envelope, handler, bridge) runs on it unchanged.
 *
 * Receiving: the session's read loop hands every frame in at once (it never waits on a stream); the
 * queue stays within the window because the peer may not send more than we credited. Each message
 * the application takes returns its bytes as credit, batched: a CREDIT goes out once a quarter of the
 * window is unreturned or the queue has run empty, so an interactive stream never waits.
 *
 * The window grows where it is what limits a stream. A sender that runs out of window says BLOCKED
 * (once per CREDIT); if it has sent a whole window since the last growth and less than half of a
 * window is waiting here, the rest is in flight — the application keeps up and the round trip is
 * the limit — so the window doubles at once (the extra goes out as credit), up to
 * MUX_STREAM_MAX_WINDOW and within the session's growth budget. A slow reader has its window queued
 * here when BLOCKED comes and never grows it, so memory stays bounded by what a fast one needs. (A carrier ping cannot time the round trip: WebSocket pings
 * are answered by the relay, hop by hop.)
 *
 * Sending: a send waits until the send window covers its payload; sends leave in call order, and
 * our CLOSE queues behind them (data after our CLOSE would be a protocol error at the peer).
 *
 * Closing mirrors conn.ts: the peer's CLOSE first makes receive() return null (after the messages
 * before it) while send() still works; our close() sends CLOSE and waits for the peer's, or drops
 * the stream (RESET) after closeTimeoutMs. The stream is released from the session once both CLOSEs
 * are exchanged, after a RESET either way, or when the carrier is lost.
 */
import { WsError } from "../ws/errors.ts";
import type { CloseInfo, MessageSocket, WsMessage } from "../ws/types.ts";
import {
  encodeClose,
  encodeData,
  encodeFrame,
  MUX_MAX_MESSAGE,
  MUX_MAX_WINDOW,
  MUX_MESSAGE_COST,
  MUX_STREAM_MAX_WINDOW,
} from "./frame.ts";

/** What a stream needs from its session. */
export interface StreamHost {
  readonly windowBytes: number;
  readonly closeTimeoutMs: number;
  /** True while frames can still go out on the carrier. */
  live(): boolean;
  /** Hands one frame to the carrier (in call order); rejects with a WsError once it is gone. */
  write(frame: Uint8Array): Promise<void>;
  ping(timeoutMs: number): Promise<void>;
  /** The stream is done: remove it from the session. Called once. */
  release(stream: MuxStream): void;
  /** Up to `bytes` more window from the session's growth budget: what it grants. */
  grow(bytes: number): number;
  /** A released stream gives its growth back. */
  shrink(bytes: number): void;
}

/**
 * The session's side of a stream: frames from the peer. A returned string is a protocol error
 * (its reason); the session then ends the carrier.
 */
export interface StreamWire {
  data(msg: WsMessage, size: number): string | null;
  credit(bytes: number): string | null;
  blocked(): void;
  close(info: CloseInfo): string | null;
  reset(): void;
  /** The carrier is gone (or the session ended): fail as on a dropped connection. */
  lost(err: WsError): void;
}

interface Waiter {
  resolve(msg: WsMessage | null): void;
  reject(err: unknown): void;
}

interface Queued {
  msg: WsMessage;
  size: number;
}

/** A send waiting for window, or our CLOSE waiting behind them. */
interface Outgoing {
  frame: Uint8Array;
  size: number;
  close: boolean;
  resolve(): void;
  reject(err: unknown): void;
}

const utf8 = new TextEncoder();
const noop = () => {};

export class MuxStream implements MessageSocket {
  readonly id: number;
  readonly closed: Promise<void>;
  readonly #host: StreamHost;
  #resolveClosed: () => void = noop;
  #released = false;
  /** closeNow() or a close() deadline dropped the stream (no peer CLOSE needed any more). */
  #dropped = false;
  #failure: WsError | null = null;

  // Receive side.
  #queue: Queued[] = [];
  #waiters: Waiter[] = [];
  /** The peer's CLOSE once its frame arrived; `closeInfo` shows it once the queue before it is read. */
  #peerClose: CloseInfo | null = null;
  #closeInfo: CloseInfo | null = null;
  /** Bytes the peer may still send before we credit more. */
  #recvWindow: number;
  /** Bytes the application took that are not credited back yet. */
  #unreturned = 0;
  /** The receive window now (grown from windowBytes), and the bytes queued unread. */
  #window: number;
  #queuedBytes = 0;
  /** What the peer sent since the window last grew: a BLOCKED counts only after a whole window. */
  #sinceGrowth = 0;
  /** A CREDIT is in the carrier's send queue: more is gathered in #unreturned until it leaves. */
  #crediting = false;

  // Send side.
  #sendWindow: number;
  #outgoing: Outgoing[] = [];
  /** BLOCKED went out since the last CREDIT, and whether it is still in the send queue. */
  #blockedSent = false;
  #blocking = false;
  #closeQueued = false;
  #closeWritten = false;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(id: number, host: StreamHost, attach: (wire: StreamWire) => void) {
    this.id = id;
    this.#host = host;
    this.#recvWindow = host.windowBytes;
    this.#window = host.windowBytes;
    this.#sendWindow = host.windowBytes;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    attach({
      data: (msg, size) => this.#onData(msg, size),
      credit: (bytes) => this.#onCredit(bytes),
      blocked: () => this.#onBlocked(),
      close: (info) => this.#onClose(info),
      reset: () => this.#fail(new WsError("connection_lost", "connection lost: stream reset")),
      lost: (err) => this.#fail(err),
    });
  }

  /** The receive window now: windowBytes, or more once it has grown. */
  get receiveWindow(): number {
    return this.#window;
  }

  get closeInfo(): CloseInfo | null {
    return this.#closeInfo;
  }

  get closeSent(): boolean {
    return this.#closeQueued || this.#dropped || this.#failure !== null;
  }

  receive(): Promise<WsMessage | null> {
    if (this.#queue.length > 0) return Promise.resolve(this.#take());
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closeInfo) return Promise.resolve(null);
    if (this.#dropped) return Promise.reject(new WsError("closed", "connection closed"));
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  send(data: Uint8Array | string): Promise<void> {
    if (this.closeSent || this.#released) {
      return Promise.reject(new WsError("closed", "send after close"));
    }
    const text = typeof data === "string";
    const payload = text ? utf8.encode(data) : data;
    if (payload.length > MUX_MAX_MESSAGE) {
      return Promise.reject(
        new WsError("message_too_big", `message of ${payload.length} bytes > ${MUX_MAX_MESSAGE}`),
      );
    }
    const frame = encodeData(text ? "text" : "binary", this.id, payload);
    const size = payload.length + MUX_MESSAGE_COST;
    return new Promise((resolve, reject) => {
      this.#outgoing.push({ frame, size, close: false, resolve, reject });
      this.#flush();
    });
  }

  ping(timeoutMs: number): Promise<void> {
    // Like conn.ts: only an open stream pings (a closing one gets no answer worth waiting for).
    if (this.closeSent || this.#peerClose || this.#released) {
      return Promise.reject(new WsError("closed", "ping after close"));
    }
    return this.#host.ping(timeoutMs);
  }

  close(code = 1000, reason = ""): Promise<void> {
    let frame: Uint8Array;
    try {
      frame = encodeClose(this.id, code, reason);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.closeSent || this.#released) return this.closed;
    this.#closeQueued = true;
    this.#closeTimer = setTimeout(() => this.#drop(), this.#host.closeTimeoutMs);
    this.#outgoing.push({ frame, size: 0, close: true, resolve: noop, reject: noop });
    this.#flush();
    return this.closed;
  }

  closeNow(): void {
    this.#drop();
  }

  // ---- receive side ----

  /** Takes the next queued message, returning credit and exposing the peer's CLOSE behind it. */
  #take(): WsMessage {
    const { msg, size } = this.#queue.shift()!;
    this.#queuedBytes -= size;
    this.#returnCredit(size);
    if (this.#queue.length === 0 && this.#peerClose) this.#closeInfo = this.#peerClose;
    return msg;
  }

  #returnCredit(size: number): void {
    this.#unreturned += size;
    // Once the peer's CLOSE is in (or we are gone) it sends no more data: credit is moot.
    if (this.#peerClose || this.#released || this.#unreturned === 0 || this.#crediting) return;
    if (this.#unreturned < this.#window / 4 && this.#queue.length > 0) return;
    const bytes = this.#unreturned;
    this.#unreturned = 0;
    this.#recvWindow += bytes;
    this.#crediting = true;
    this.#host.write(encodeFrame({ type: "credit", id: this.id, bytes })).then(() => {
      this.#crediting = false;
      this.#returnCredit(0);
    }, noop);
  }

  /** The peer ran out of window: grow it if that is the round trip's doing, not our reader's. */
  #onBlocked(): void {
    if (this.#peerClose || this.#sinceGrowth < this.#window) return;
    if (this.#queuedBytes >= this.#window / 2) return;
    const extra = this.#host.grow(Math.min(this.#window, MUX_STREAM_MAX_WINDOW - this.#window));
    if (extra === 0) return;
    this.#window += extra;
    this.#sinceGrowth = 0;
    this.#returnCredit(extra);
  }

  #onData(msg: WsMessage, payloadBytes: number): string | null {
    if (this.#peerClose) return `data after close on stream ${this.id}`;
    const size = payloadBytes + MUX_MESSAGE_COST;
    if (size > this.#recvWindow) return `stream ${this.id} exceeded its window`;
    this.#recvWindow -= size;
    this.#sinceGrowth += size;
    const waiter = this.#waiters.shift();
    if (!waiter) {
      this.#queue.push({ msg, size });
      this.#queuedBytes += size;
      return null;
    }
    waiter.resolve(msg);
    this.#returnCredit(size);
    return null;
  }

  #onClose(info: CloseInfo): string | null {
    if (this.#peerClose) return `second close on stream ${this.id}`;
    this.#peerClose = info;
    if (this.#queue.length === 0) {
      this.#closeInfo = info;
      for (const w of this.#waiters.splice(0)) w.resolve(null);
    }
    if (this.#closeWritten) this.#release();
    return null;
  }

  // ---- send side ----

  #onCredit(bytes: number): string | null {
    if (bytes === 0) return `zero credit on stream ${this.id}`;
    this.#sendWindow += bytes;
    this.#blockedSent = false;
    if (this.#sendWindow > MUX_MAX_WINDOW) {
      return `stream ${this.id} credited beyond ${MUX_MAX_WINDOW} bytes`;
    }
    this.#flush();
    return null;
  }

  /** Writes queued sends, in order, as far as the window reaches. */
  #flush(): void {
    while (this.#outgoing.length > 0 && this.#outgoing[0].size <= this.#sendWindow) {
      const out = this.#outgoing.shift()!;
      this.#sendWindow -= out.size;
      this.#host.write(out.frame).then(out.resolve, out.reject);
      if (out.close) {
        this.#closeWritten = true;
        if (this.#peerClose) this.#release();
      }
    }
    if (this.#outgoing.length > 0 && !this.#blockedSent && !this.#blocking && this.#host.live()) {
      this.#blockedSent = true;
      this.#blocking = true;
      // A CREDIT that came while it was queued may leave the sender blocked still: say so again.
      const settled = () => {
        this.#blocking = false;
        if (!this.#blockedSent && !this.#released) this.#flush();
      };
      this.#host.write(encodeFrame({ type: "blocked", id: this.id })).then(settled, settled);
    }
  }

  // ---- teardown ----

  /** Our drop: RESET (best effort), release now. */
  #drop(): void {
    if (this.#released) return;
    this.#dropped = true;
    if (this.#host.live()) {
      this.#host.write(encodeFrame({ type: "reset", id: this.id })).catch(noop);
    }
    this.#queue = [];
    this.#queuedBytes = 0;
    const gone = new WsError("closed", "connection closed");
    for (const w of this.#waiters.splice(0)) w.reject(gone);
    this.#release(gone);
  }

  /** The peer's RESET or the carrier's loss: like a dropped WebSocket (closeInfo 1006). */
  #fail(err: WsError): void {
    if (this.#released) return;
    this.#failure ??= err;
    this.#closeInfo ??= this.#peerClose ?? { code: 1006, reason: "" };
    this.#queue = [];
    this.#queuedBytes = 0;
    for (const w of this.#waiters.splice(0)) w.reject(this.#failure);
    this.#release(this.#failure);
  }

  #release(err: WsError = new WsError("closed", "connection closed")): void {
    for (const out of this.#outgoing.splice(0)) out.reject(err);
    if (this.#released) return;
    this.#released = true;
    clearTimeout(this.#closeTimer);
    this.#host.shrink(this.#window - this.#host.windowBytes);
    this.#host.release(this);
    this.#resolveClosed();
  }
}
