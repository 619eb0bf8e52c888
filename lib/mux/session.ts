/**
 * A mux session: many MuxStreams over one carrier MessageSocket (wire format in frame.ts).
 *
 * One read loop calls carrier.receive() continuously and hands each frame to its stream at once;
 * the stream windows bound what can queue, so the loop never waits on a slow stream and one stream
 * cannot stall the others. Every frame goes out through carrier.send, which serialises; frames the
 * loop itself answers with (CLOSE 1013) are not awaited, so it never blocks on the carrier's send.
 *
 * A broken peer (see frame.ts and the checks below) ends the session: the carrier is closed with
 * 1002 "mux protocol error" and every stream fails as on carrier loss. Frames for an id that was
 * opened but is already released here (a race after close or reset) are ignored.
 */
import type { Logger } from "../observe/log.ts";
import { WsError } from "../ws/errors.ts";
import type { CloseInfo, MessageSocket, WsMessage } from "../ws/types.ts";
import {
  decodeFrame,
  encodeClose,
  encodeFrame,
  MUX_MAX_WINDOW,
  MUX_MIN_WINDOW,
  MUX_SESSION_GROWTH,
  MUX_WINDOW,
  MuxError,
  type MuxFrame,
} from "./frame.ts";
import { WindowBudget } from "./budget.ts";
import { MuxStream, type StreamHost, type StreamWire } from "./stream.ts";

export const DEFAULT_MAX_STREAMS = 64;
export const DEFAULT_STREAM_CLOSE_TIMEOUT_MS = 5_000;
const MAX_STREAM_ID = 0xffff_ffff;

export interface MuxSessionOptions {
  /** The opener opens streams, the acceptor accepts them; one carrier has one of each. */
  role: "opener" | "acceptor";
  /**
   * Acceptor: an OPEN beyond this many live streams is answered at once with CLOSE 1013
   * "too many streams" and never surfaced. Default 64.
   */
  maxStreams?: number;
  /**
   * The initial window per stream and direction; both ends must use the same value (it is implicit
   * at OPEN). At least MUX_MIN_WINDOW, so every tunnel message fits. Default MUX_WINDOW.
   */
  windowBytes?: number;
  /** A stream's close() waits this long for the peer's CLOSE, then resets. Default 5000. */
  closeTimeoutMs?: number;
  /** Hears every change of the live stream count (idle tracking). */
  onStreamsChange?: (streams: number) => void;
  /** DEBUG lines only: protocol errors with their reason, the session's end. */
  logger?: Logger;
  /** Window growth shared with other sessions (a listener's), beside this one's own budget. */
  sharedGrowth?: WindowBudget;
}

interface Entry {
  stream: MuxStream;
  wire: StreamWire;
}

const noop = () => {};

export class MuxSession {
  readonly done: Promise<void>;
  readonly #carrier: MessageSocket;
  readonly #role: "opener" | "acceptor";
  readonly #maxStreams: number;
  readonly #onStreamsChange: ((streams: number) => void) | undefined;
  readonly #logger: Logger | undefined;
  readonly #host: StreamHost;
  readonly #live = new Map<number, Entry>();
  /** The highest id opened so far (ids only grow): a frame for a lower unknown id is a late one. */
  #maxId = 0;
  #ended = false;
  #lastFrameAt = performance.now();
  /** Window growth left for this session's streams (MUX_SESSION_GROWTH in all). */
  readonly #growth = new WindowBudget(MUX_SESSION_GROWTH);
  /** CLOSE 1013 answers not yet handed to the carrier: a peer that floods OPENs must read them. */
  #refusing = 0;
  /** Opened by the peer, not yet taken by accept(). */
  #unaccepted: MuxStream[] = [];
  #acceptWaiters: ((stream: MuxStream | null) => void)[] = [];

  constructor(carrier: MessageSocket, opts: MuxSessionOptions) {
    const windowBytes = opts.windowBytes ?? MUX_WINDOW;
    if (
      !Number.isInteger(windowBytes) || windowBytes < MUX_MIN_WINDOW ||
      windowBytes > MUX_MAX_WINDOW
    ) {
      throw new RangeError(
        `mux window ${windowBytes} outside ${MUX_MIN_WINDOW}..${MUX_MAX_WINDOW}`,
      );
    }
    this.#carrier = carrier;
    this.#role = opts.role;
    this.#maxStreams = opts.maxStreams ?? DEFAULT_MAX_STREAMS;
    this.#onStreamsChange = opts.onStreamsChange;
    this.#logger = opts.logger;
    this.#host = {
      windowBytes,
      closeTimeoutMs: opts.closeTimeoutMs ?? DEFAULT_STREAM_CLOSE_TIMEOUT_MS,
      live: () => !this.#ended,
      write: (frame) => this.#write(frame),
      ping: (ms) => this.ping(ms),
      release: (stream) => this.#release(stream),
      grow: (bytes) => {
        const own = this.#growth.take(bytes);
        const granted = opts.sharedGrowth ? opts.sharedGrowth.take(own) : own;
        this.#growth.give(own - granted);
        return granted;
      },
      shrink: (bytes) => {
        this.#growth.give(bytes);
        opts.sharedGrowth?.give(bytes);
      },
    };
    const loop = this.#readLoop();
    this.done = (async () => {
      await loop;
      await carrier.closed;
      await Promise.all([...this.#live.values()].map((e) => e.stream.closed));
    })();
  }

  /** Live (not yet released) streams, accepted or not. */
  get streams(): number {
    return this.#live.size;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** performance.now() of the last carrier message received (the session's start before any). */
  get lastFrameAt(): number {
    return this.#lastFrameAt;
  }

  /** Opens a stream (opener only); its OPEN goes out before anything sent on it. */
  open(): MuxStream {
    if (this.#role !== "opener") throw new MuxError("mux_role", "only the opener opens streams");
    if (this.#ended) throw new MuxError("mux_closed", "mux session ended");
    if (this.#maxId >= MAX_STREAM_ID) throw new MuxError("mux_closed", "stream ids exhausted");
    const id = ++this.#maxId;
    this.#write(encodeFrame({ type: "open", id })).catch(noop);
    return this.#add(id);
  }

  /** The next stream the peer opened (acceptor only); null once the session has ended. */
  accept(): Promise<MuxStream | null> {
    if (this.#role !== "acceptor") {
      return Promise.reject(new MuxError("mux_role", "only the acceptor accepts streams"));
    }
    const next = this.#unaccepted.shift();
    if (next) return Promise.resolve(next);
    if (this.#ended) return Promise.resolve(null);
    return new Promise((resolve) => this.#acceptWaiters.push(resolve));
  }

  ping(timeoutMs: number): Promise<void> {
    if (this.#ended) return Promise.reject(new WsError("closed", "ping after close"));
    return this.#carrier.ping(timeoutMs);
  }

  /** Ends the session: live streams fail as on carrier loss, the carrier closes with `code`. */
  async close(code = 1000, reason = ""): Promise<void> {
    this.#end("session closed");
    await this.#carrier.close(code, reason).catch(() => this.#carrier.closeNow());
  }

  /** Ends the session and drops the carrier without a Close. */
  closeNow(): void {
    this.#end("session dropped");
    this.#carrier.closeNow();
  }

  #add(id: number): MuxStream {
    let wire: StreamWire | undefined;
    const stream = new MuxStream(id, this.#host, (w) => wire = w);
    this.#live.set(id, { stream, wire: wire! });
    this.#onStreamsChange?.(this.#live.size);
    return stream;
  }

  #release(stream: MuxStream): void {
    if (!this.#live.delete(stream.id)) return;
    const waiting = this.#unaccepted.indexOf(stream);
    if (waiting >= 0) this.#unaccepted.splice(waiting, 1);
    this.#onStreamsChange?.(this.#live.size);
  }

  async #write(frame: Uint8Array): Promise<void> {
    if (this.#ended) throw new WsError("closed", "mux session ended");
    try {
      await this.#carrier.send(frame);
    } catch (err) {
      if (err instanceof WsError) throw err;
      throw new WsError("connection_lost", "mux carrier lost", { cause: err });
    }
  }

  // ---- the read loop ----

  async #readLoop(): Promise<void> {
    let msg: WsMessage | null;
    for (;;) {
      try {
        msg = await this.#carrier.receive();
      } catch (err) {
        this.#end("carrier lost", err);
        this.#carrier.closeNow();
        return;
      }
      if (msg === null) break;
      this.#lastFrameAt = performance.now();
      // After the end, keep reading so the carrier's closing handshake completes.
      if (!this.#ended) this.#onMessage(msg);
    }
    const info: CloseInfo = this.#carrier.closeInfo ?? { code: 1005, reason: "" };
    this.#end("carrier closed by peer");
    await this.#carrier.close(info.code, info.reason).catch(() => this.#carrier.closeNow());
  }

  #onMessage(msg: WsMessage): void {
    if (msg.type === "text") return this.#protocolError("text carrier message");
    let frame: MuxFrame;
    try {
      frame = decodeFrame(msg.data);
    } catch (err) {
      if (!(err instanceof MuxError)) throw err;
      return this.#protocolError(err.message);
    }
    if (frame.type === "open") return this.#onOpen(frame.id);
    const entry = this.#live.get(frame.id);
    if (!entry) {
      if (frame.id > this.#maxId) this.#protocolError(`frame for unopened stream ${frame.id}`);
      return;
    }
    const problem = this.#dispatch(entry.wire, frame);
    if (problem !== null) this.#protocolError(problem);
  }

  #dispatch(wire: StreamWire, frame: Exclude<MuxFrame, { type: "open" }>): string | null {
    switch (frame.type) {
      case "text":
        return wire.data({ type: "text", data: frame.data }, frame.size);
      case "binary":
        return wire.data({ type: "binary", data: frame.data }, frame.data.length);
      case "credit":
        return wire.credit(frame.bytes);
      case "close":
        return wire.close({ code: frame.code, reason: frame.reason });
      case "reset":
        wire.reset();
        return null;
      case "blocked":
        wire.blocked();
        return null;
    }
  }

  #onOpen(id: number): void {
    if (this.#role === "opener") return this.#protocolError("OPEN from the acceptor side");
    if (id <= this.#maxId) return this.#protocolError(`OPEN id ${id} not above ${this.#maxId}`);
    this.#maxId = id;
    if (this.#live.size >= this.#maxStreams) {
      // Bounded: an opener that keeps opening without reading the answers is broken.
      if (this.#refusing >= this.#maxStreams) {
        return this.#protocolError("too many streams refused and unread");
      }
      this.#refusing++;
      this.#write(encodeClose(id, 1013, "too many streams")).catch(noop).finally(() =>
        this.#refusing--
      );
      return;
    }
    const stream = this.#add(id);
    const waiter = this.#acceptWaiters.shift();
    if (waiter) waiter(stream);
    else this.#unaccepted.push(stream);
  }

  #protocolError(reason: string): void {
    this.#logger?.debug("mux protocol error", { reason });
    this.#end("protocol error", new MuxError("mux_protocol", reason));
    this.#carrier.close(1002, "mux protocol error").catch(() => this.#carrier.closeNow());
  }

  /** Ends the session once: every stream fails as on carrier loss, accept() answers null. */
  #end(why: string, cause?: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#logger?.debug("mux session ended", { reason: why, streams: this.#live.size });
    const err = new WsError("connection_lost", `connection lost: mux ${why}`, { cause });
    for (const { wire } of [...this.#live.values()]) wire.lost(err);
    this.#unaccepted = [];
    for (const w of this.#acceptWaiters.splice(0)) w(null);
  }
}
