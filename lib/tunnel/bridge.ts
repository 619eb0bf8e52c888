/**
 * The data phase of a tunnel (reference §2.4): bytes from a local stream become BINARY messages of
 * at most 32768 bytes, and every incoming message's payload is written back to the stream. Each pump
 * waits for its previous write before reading again, so a slow end pushes back instead of buffering.
 *
 * Plain v1 (a Go peer, the Arc agent): the peer's end ends the tunnel; a local EOF cannot be passed
 * on, so the bridge stops sending and lingers, still delivering the peer's data, until the peer
 * closes or the linger runs out. With the negotiated `half-close` feature, TEXT messages are control
 * messages: a local EOF is sent as `{"type":"eof"}` and a received one becomes `closeWrite()`; the
 * other direction keeps flowing and the tunnel ends once both directions have ended.
 *
 * A cut tunnel is not ended like a complete one: the peer gets Close 1011 (local failure) or 1001
 * (stop) instead of 1000 or eof, and a local stream that can reset is reset (RST). With half-close
 * only the negotiated end (eof, then Close 1000) is clean; a peer that cannot half-close also ends
 * normally with 1001 or a drop after data (Go senders drop their socket; Azure shows 1001 or EOF).
 */
import { closeQuietly } from "../async.ts";
import { AztunnelError, errorCode, errorMessage } from "../errors.ts";
import { ReadSizer } from "../net/read_sizer.ts";
import { writeAll } from "../net/write_all.ts";
import type { Logger } from "../observe/log.ts";
import { describeClose } from "../ws/close.ts";
import type { MessageSocket, WsMessage } from "../ws/types.ts";
import {
  type BridgeCause,
  bridgeLogAttrs,
  type BridgeResult,
  causeFromAbort,
} from "./bridge_result.ts";
import { MAX_DATA_MESSAGE } from "./envelope.ts";
import type { TunnelObserver, TunnelRole } from "./observer.ts";

/** The part of Deno.Conn the bridge uses (stdin/stdout adapters and test fakes implement it too). */
export interface ByteStream {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  /** A clean close: the peer reads EOF. */
  close(): void;
  /**
   * Drops the stream so its peer sees a reset (RST), not an EOF; absent: `close()`. `Deno.Conn`
   * cannot (no SO_LINGER, and its close sends FIN first); `node:net` sockets can, but under Deno
   * 2.9.6 they fail writes with EPIPE once the peer has sent FIN, which loses half-close data.
   */
  reset?(): void;
}

export interface BridgeOptions {
  /** Both sides agreed on the `half-close` feature. */
  halfClose: boolean;
  /** Aborting tears the tunnel down; the reason picks the cause (see causeFromAbort). */
  signal?: AbortSignal;
  /** WebSocket ping period on the data socket; 0 disables. Default 30 s. */
  pingIntervalMs?: number;
  /** Pong deadline; a missed pong is ignored (the ping only keeps relays from idling out). */
  pingTimeoutMs?: number;
  /** End as soon as the peer's data ends, even with half-close (stdio: remote end means exit). */
  endOnPeerEof?: boolean;
  /**
   * Without half-close: how long the peer's data is still delivered after the local EOF before the
   * tunnel ends (default DEFAULT_HALF_CLOSE_LINGER_MS); 0 ends it at once.
   */
  halfCloseLingerMs?: number;
}

export const EOF_MESSAGE = '{"type":"eof"}';
const DEFAULT_PING_INTERVAL = 30_000;
const DEFAULT_PING_TIMEOUT = 10_000;
/** Like socat's `-t` (0.5 s), a little longer: a reply may have to cross the relay twice. */
export const DEFAULT_HALF_CLOSE_LINGER_MS = 2_000;
/**
 * The local stream's read buffer: small while the tunnel idles (its pending read holds it), doubled
 * by every read that fills it, up to READ_BUFFER_MAX for bulk transfers (see ReadSizer).
 */
export const READ_BUFFER_INITIAL = 8 * 1024;
export const READ_BUFFER_MAX = 64 * 1024;
const encoder = new TextEncoder();

/** A failure of the tunnel's WebSocket side as seen by the bridge (peer close code, bad control). */
export class BridgeError extends AztunnelError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.name = "BridgeError";
  }
}

function localCause(err: unknown): BridgeCause {
  const code = errorCode(err);
  return err instanceof Deno.errors.TimedOut || code === "ETIMEDOUT" ? "timeout" : "local_close";
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(errorMessage(err));
}

/**
 * How the tunnel ended, which decides how both sides are closed:
 * - `clean`: the streams are complete; local FIN, Close 1000 "done".
 * - `peer_cut`: the peer or the relay cut the tunnel; local reset, so the local peer does not take
 *   what it got for a complete stream.
 * - `local_cut`: the local stream failed (e.g. the client reset); local reset, Close 1011, which
 *   our peers take for a cut (no eof came first).
 * - `cancel`: stopped here (shutdown, drain timeout); local reset, Close 1001.
 */
type Ending = "clean" | "peer_cut" | "local_cut" | "cancel";

const CLOSE_FOR: Record<Ending, [number, string]> = {
  clean: [1000, "done"],
  peer_cut: [1011, "tunnel cut"],
  local_cut: [1011, "tunnel cut"],
  cancel: [1001, "going away"],
};

/**
 * While the tunnel runs: both directions flow, or one or both have ended normally (local EOF read,
 * peer eof received). In `both_done` the last step of the second end (sending our eof, closing the
 * local write side) is still under way; once it is done the tunnel ends clean.
 */
type Flow = "open" | "local_done" | "peer_done" | "both_done";
/** One state: flowing, or ended (an Ending, final). */
type State = Flow | Ending;
type Direction = "tcp_to_ws" | "ws_to_tcp";

const FLOWING: ReadonlySet<State> = new Set<State>([
  "open",
  "local_done",
  "peer_done",
  "both_done",
]);

/**
 * Runs the tunnel until it ends, then closes `local` (or resets it when the tunnel was cut) and
 * ends the WebSocket with a Close that tells the peer which it was (or drops it when it already
 * failed). Never rejects.
 */
export function bridge(
  local: ByteStream,
  ws: MessageSocket,
  opts: BridgeOptions,
): Promise<BridgeResult> {
  return new Bridge(local, ws, opts).run();
}

/** One tunnel's data phase: a pump per direction, the control messages, the teardown. */
class Bridge {
  readonly #local: ByteStream;
  readonly #ws: MessageSocket;
  readonly #opts: BridgeOptions;
  readonly #result: BridgeResult = { cause: "unknown", tcpToWs: 0, wsToTcp: 0 };
  #state: State = "open";
  /** The cause of the first direction to end normally: the tunnel's cause if it then ends clean. */
  #firstEnd: BridgeCause | undefined;
  /** A send or receive failed: the socket is dropped, not closed. */
  #wsBroken = false;
  /** endOnPeerEof ended the tunnel: our eof is still owed, or the peer sees a truncated tunnel. */
  #eofOwed = false;
  #lingerTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #pings: Promise<void>[] = [];
  readonly #ended = Promise.withResolvers<void>();

  constructor(local: ByteStream, ws: MessageSocket, opts: BridgeOptions) {
    this.#local = local;
    this.#ws = ws;
    this.#opts = opts;
  }

  async run(): Promise<BridgeResult> {
    const { signal } = this.#opts;
    const onAbort = () => this.#finish(causeFromAbort(signal?.reason), "cancel");
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
    const pingTimer = this.#startPings();

    const up = this.#pumpTcpToWs();
    const down = this.#pumpWsToTcp();
    await this.#ended.promise;

    clearInterval(pingTimer);
    clearTimeout(this.#lingerTimer);
    signal?.removeEventListener("abort", onAbort);
    const how = this.#state as Ending;
    this.#endLocal(how);
    await Promise.allSettled([this.#endWs(how), up, down, ...this.#pings]);
    await this.#ws.closed.catch(() => {});
    return this.#result;
  }

  get #over(): boolean {
    return !FLOWING.has(this.#state);
  }
  get #localDone(): boolean {
    return this.#state === "local_done" || this.#state === "both_done";
  }
  get #peerDone(): boolean {
    return this.#state === "peer_done" || this.#state === "both_done";
  }

  /** Ends the tunnel (the first call wins) and records why. */
  #finish(cause: BridgeCause, how: Ending, err?: unknown, dir?: Direction): void {
    if (this.#over) return;
    this.#state = how;
    this.#result.cause = cause;
    if (err !== undefined) {
      const e = asError(err);
      this.#result.error = e;
      if (dir === "tcp_to_ws") this.#result.tcpToWsErr = e;
      if (dir === "ws_to_tcp") this.#result.wsToTcpErr = e;
    }
    this.#ended.resolve();
  }

  /** One direction ended normally; its last step (eof sent, write side closed) may be pending. */
  #markDone(side: "local" | "peer"): void {
    if (this.#state === "open") this.#state = side === "local" ? "local_done" : "peer_done";
    else if (this.#state === (side === "local" ? "peer_done" : "local_done")) {
      this.#state = "both_done";
    }
  }

  /** With half-close, one direction's end is complete; the tunnel ends once both are. */
  #directionEnded(cause: BridgeCause): void {
    this.#firstEnd ??= cause;
    if (this.#state === "both_done") this.#finish(this.#firstEnd, "clean");
  }

  /**
   * Without half-close the peer cannot be told that the local side stopped sending: stop reading
   * and keep delivering the peer's data until it closes or the linger runs out (socat's `-t`).
   */
  #linger(): void {
    this.#firstEnd ??= "local_close";
    const ms = this.#opts.halfCloseLingerMs ?? DEFAULT_HALF_CLOSE_LINGER_MS;
    if (ms <= 0) this.#finish(this.#firstEnd, "clean");
    else {
      this.#lingerTimer = setTimeout(
        () => this.#finish(this.#firstEnd ?? "local_close", "clean"),
        ms,
      );
    }
  }

  /** A peer that cannot half-close ends normally with 1000, 1001 or a drop once data has moved. */
  #v1NormalEnd(code: number): boolean {
    const movedData = this.#result.tcpToWs + this.#result.wsToTcp > 0;
    return code === 1000 || code === 1001 || ((code === 1005 || code === 1006) && movedData);
  }

  /** Pings keep relays from idling the tunnel out; a missed pong is ignored. */
  #startPings(): ReturnType<typeof setInterval> | undefined {
    const interval = this.#opts.pingIntervalMs ?? DEFAULT_PING_INTERVAL;
    if (interval <= 0) return undefined;
    return setInterval(() => {
      const p = this.#ws.ping(this.#opts.pingTimeoutMs ?? DEFAULT_PING_TIMEOUT).catch(() => {});
      this.#pings.push(p);
      if (this.#pings.length > 4) this.#pings.shift();
    }, interval);
  }

  async #pumpTcpToWs(): Promise<void> {
    const sizer = new ReadSizer(READ_BUFFER_INITIAL, READ_BUFFER_MAX);
    let buf = new Uint8Array(sizer.size);
    while (!this.#over) {
      // Resized between reads only: the sends below are done with the previous buffer by now.
      if (buf.length !== sizer.size) buf = new Uint8Array(sizer.size);
      let n: number | null;
      try {
        n = await this.#local.read(buf);
      } catch (err) {
        return this.#finish(localCause(err), "local_cut", err, "tcp_to_ws");
      }
      if (this.#over) return;
      try {
        if (n === null) return await this.#localEof();
        sizer.record(n, buf.length);
        await this.#sendData(buf.subarray(0, n));
      } catch (err) {
        this.#wsBroken = true;
        return this.#finish("peer_close", "peer_cut", err, "tcp_to_ws");
      }
    }
  }

  /** Sends `data` as messages of at most MAX_DATA_MESSAGE bytes, stopping when the tunnel ends. */
  async #sendData(data: Uint8Array): Promise<void> {
    for (let off = 0; off < data.length && !this.#over; off += MAX_DATA_MESSAGE) {
      const end = Math.min(data.length, off + MAX_DATA_MESSAGE);
      await this.#ws.send(data.subarray(off, end));
      this.#result.tcpToWs += end - off;
    }
  }

  async #localEof(): Promise<void> {
    this.#markDone("local");
    if (!this.#opts.halfClose) return this.#linger();
    await this.#ws.send(EOF_MESSAGE);
    this.#directionEnded("local_close");
  }

  async #pumpWsToTcp(): Promise<void> {
    // After the end, keep pulling until the peer's Close so the closing handshake completes.
    for (;;) {
      let msg: WsMessage | null;
      try {
        msg = await this.#ws.receive();
      } catch (err) {
        return this.#onReceiveError(err);
      }
      if (msg === null) return this.#onPeerClose();
      if (this.#over) continue;
      if (msg.type === "text" && this.#opts.halfClose) {
        if (await this.#onControl(msg.data)) return;
        continue;
      }
      const data = msg.type === "text" ? encoder.encode(msg.data) : msg.data;
      if (!await this.#deliver(data)) return;
    }
  }

  /** Writes a message's payload to the local stream; false when that ended the tunnel. */
  async #deliver(data: Uint8Array): Promise<boolean> {
    if (this.#peerDone) {
      const err = new BridgeError("protocol_error", "data received after eof");
      this.#finish("peer_close", "peer_cut", err, "ws_to_tcp");
      return false;
    }
    try {
      await writeAll(this.#local, data);
      this.#result.wsToTcp += data.length;
      return true;
    } catch (err) {
      this.#finish(localCause(err), "local_cut", err, "ws_to_tcp");
      return false;
    }
  }

  #onReceiveError(err: unknown): void {
    this.#wsBroken = true;
    const code = this.#ws.closeInfo?.code ?? 1006;
    this.#result.closeCode ??= code;
    if (this.#over) return;
    const how = !this.#opts.halfClose && this.#v1NormalEnd(code) ? "clean" : "peer_cut";
    this.#finish(this.#firstEnd ?? "peer_close", how, err, "ws_to_tcp");
  }

  /** The peer's Close arrived: an end, a cut, or (after our end) the closing handshake. */
  #onPeerClose(): void {
    if (this.#over) return;
    const info = this.#ws.closeInfo;
    const code = info?.code ?? 1005;
    if (this.#opts.halfClose && !this.#peerDone) {
      // A Close before the peer's eof means its data was cut off (a killed peer reaches us
      // through the relay as 1001): even a 1000 here is not a clean end.
      this.#result.closeCode = code;
      const err = new BridgeError(
        "closed_before_eof",
        `tunnel closed by peer before end of data (close ${describeClose(info)})`,
      );
      this.#finish("peer_close", "peer_cut", err, "ws_to_tcp");
    } else if (code === 1000) {
      // With half-close, a direction may have ended before: it is what ended the tunnel.
      this.#finish(this.#firstEnd ?? "peer_close", "clean");
    } else {
      this.#result.closeCode = code;
      const how = !this.#opts.halfClose && this.#v1NormalEnd(code) ? "clean" : "peer_cut";
      const err = new BridgeError(
        "peer_closed",
        `websocket closed with code ${describeClose(info)}`,
      );
      this.#finish(this.#firstEnd ?? "peer_close", how, err, "ws_to_tcp");
    }
  }

  /** Handles one control message (half-close only); true when the pump should stop. */
  async #onControl(text: string): Promise<boolean> {
    // Unknown control messages are skipped so later features can add some.
    if (controlType(text) !== "eof" || this.#peerDone) return false;
    this.#markDone("peer");
    try {
      await this.#local.closeWrite();
    } catch (err) {
      this.#finish(localCause(err), "local_cut", err, "ws_to_tcp");
      return true;
    }
    if (!this.#opts.endOnPeerEof) {
      this.#directionEnded("peer_close");
    } else if (!this.#over) {
      this.#eofOwed = !this.#localDone;
      this.#finish(this.#firstEnd ?? "peer_close", "clean");
    }
    return false;
  }

  /** Closes the local stream, or resets it when the tunnel was cut and it can. */
  #endLocal(how: Ending): void {
    if (how === "clean" || !this.#local.reset) return closeQuietly(this.#local);
    try {
      this.#local.reset();
      this.#result.localReset = true;
    } catch {
      // already closed
    }
  }

  /** Ends the socket with the Close `how` calls for, or drops it when it already failed. */
  #endWs(how: Ending): Promise<void> {
    if (this.#wsBroken) return Promise.resolve(this.#ws.closeNow());
    const [code, reason] = CLOSE_FOR[how];
    const close = async () => {
      if (this.#eofOwed) await this.#ws.send(EOF_MESSAGE);
      await this.#ws.close(code, reason);
    };
    return close().catch(() => this.#ws.closeNow());
  }
}

/** The `type` of a control message; undefined when it is not a JSON object with one. */
function controlType(text: string): unknown {
  try {
    return (JSON.parse(text) as { type?: unknown } | null)?.type;
  } catch {
    return undefined;
  }
}

export interface ObservedBridgeOptions extends BridgeOptions {
  /** Gets the `bridge ended` DEBUG line. */
  logger: Logger;
  observer?: TunnelObserver;
}

/**
 * `bridge` with what every tunnel (sender or listener) does around it: the observer's
 * connectionStarted/connectionEnded hooks and the `bridge ended` DEBUG line.
 */
export async function observedBridge(
  role: TunnelRole,
  target: string,
  local: ByteStream,
  ws: MessageSocket,
  opts: ObservedBridgeOptions,
): Promise<BridgeResult> {
  opts.observer?.connectionStarted?.(role, target);
  const started = performance.now();
  const result = await bridge(local, ws, opts);
  opts.logger.debug("bridge ended", { target, ...bridgeLogAttrs(result) });
  opts.observer?.connectionEnded?.(role, target, result, performance.now() - started);
  return result;
}
