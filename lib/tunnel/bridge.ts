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
import { AztunnelError, errorCode, errorMessage } from "../errors.ts";
import type { Logger } from "../observe/log.ts";
import { ReadSizer } from "../ws/read_sizer.ts";
import type { MessageSocket } from "../ws/types.ts";
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

export type BridgeCause =
  | "local_close"
  | "peer_close"
  | "timeout"
  | "user_cancel"
  | "unknown";

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

export interface BridgeResult {
  cause: BridgeCause;
  /** Bytes read from the local stream and sent as messages. */
  tcpToWs: number;
  /** Bytes received as messages and written to the local stream. */
  wsToTcp: number;
  /** The first failure; undefined when the tunnel ended cleanly or by cancellation. */
  error?: Error;
  tcpToWsErr?: Error;
  wsToTcpErr?: Error;
  /**
   * The peer's close code when the close was an error: not 1000, or (half-close) any code before
   * the peer's eof. 1006 for a dropped connection.
   */
  closeCode?: number;
  /** The tunnel was cut and the local stream reset rather than closed. */
  localReset?: true;
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

// Go also has renew_failure and control_error: its tunnels die with their control session, ours
// outlive it (see lib/listener/service.ts), so those causes cannot happen here.
const ABORT_CAUSES: ReadonlySet<string> = new Set(["user_cancel", "timeout"]);

/** The cause a cancellation stands for: a code we know, a timeout, a plain abort, else unknown. */
export function causeFromAbort(reason: unknown): BridgeCause {
  const code = errorCode(reason);
  if (code && ABORT_CAUSES.has(code)) return code as BridgeCause;
  if (reason instanceof DOMException) {
    if (reason.name === "TimeoutError") return "timeout";
    if (reason.name === "AbortError") return "user_cancel";
  }
  return "unknown";
}

function localCause(err: unknown): BridgeCause {
  const code = errorCode(err);
  return err instanceof Deno.errors.TimedOut || code === "ETIMEDOUT" ? "timeout" : "local_close";
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(errorMessage(err));
}

/** Writes all of `data` (a ByteStream write may take only part of it). */
export async function writeAll(w: ByteStream, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await w.write(data.subarray(off));
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
 * Runs the tunnel until it ends, then closes `local` (or resets it when the tunnel was cut) and
 * ends the WebSocket with a Close that tells the peer which it was (or drops it when it already
 * failed). Never rejects.
 */
export async function bridge(
  local: ByteStream,
  ws: MessageSocket,
  opts: BridgeOptions,
): Promise<BridgeResult> {
  const result: BridgeResult = { cause: "unknown", tcpToWs: 0, wsToTcp: 0 };
  let ending: Ending | undefined;
  let firstEnd: BridgeCause | undefined;
  let localDone = false;
  let eofSent = false;
  let peerDone = false;
  /** endOnPeerEof ended the tunnel: our eof is still owed, or the peer sees a truncated tunnel. */
  let eofOwed = false;
  let wsBroken = false;
  let lingerTimer: ReturnType<typeof setTimeout> | undefined;
  const { promise: ended, resolve: endNow } = Promise.withResolvers<void>();

  const finish = (
    cause: BridgeCause,
    how: Ending,
    err?: unknown,
    dir?: "tcp_to_ws" | "ws_to_tcp",
  ) => {
    if (ending) return;
    ending = how;
    result.cause = cause;
    if (err !== undefined) {
      const e = asError(err);
      result.error = e;
      if (dir === "tcp_to_ws") result.tcpToWsErr = e;
      if (dir === "ws_to_tcp") result.wsToTcpErr = e;
    }
    endNow();
  };
  /** With half-close, one direction ended normally; the tunnel ends once both have. */
  const directionEnded = (cause: BridgeCause) => {
    firstEnd ??= cause;
    if (localDone && peerDone) finish(firstEnd, "clean");
  };
  /**
   * Without half-close the peer cannot be told that the local side stopped sending: stop reading
   * and keep delivering the peer's data until it closes or the linger runs out (socat's `-t`).
   */
  const linger = () => {
    firstEnd ??= "local_close";
    const ms = opts.halfCloseLingerMs ?? DEFAULT_HALF_CLOSE_LINGER_MS;
    if (ms <= 0) finish(firstEnd, "clean");
    else lingerTimer = setTimeout(() => finish(firstEnd ?? "local_close", "clean"), ms);
  };
  /** A peer that cannot half-close ends normally with 1000, 1001 or a drop once data has moved. */
  const v1NormalEnd = (code: number) =>
    code === 1000 || code === 1001 || ((code === 1005 || code === 1006) && movedData());
  const movedData = () => result.tcpToWs + result.wsToTcp > 0;

  const pumpUp = async () => {
    const sizer = new ReadSizer(READ_BUFFER_INITIAL, READ_BUFFER_MAX);
    let buf = new Uint8Array(sizer.size);
    while (!ending) {
      // Resized between reads only: the sends below are done with the previous buffer by now.
      if (buf.length !== sizer.size) buf = new Uint8Array(sizer.size);
      let n: number | null;
      try {
        n = await local.read(buf);
      } catch (err) {
        finish(localCause(err), "local_cut", err, "tcp_to_ws");
        return;
      }
      if (ending) return;
      try {
        if (n === null) {
          localDone = true;
          if (!opts.halfClose) return linger();
          eofSent = true;
          await ws.send(EOF_MESSAGE);
          directionEnded("local_close");
          return;
        }
        sizer.record(n, buf.length);
        for (let off = 0; off < n && !ending; off += MAX_DATA_MESSAGE) {
          const end = Math.min(n, off + MAX_DATA_MESSAGE);
          await ws.send(buf.subarray(off, end));
          result.tcpToWs += end - off;
        }
      } catch (err) {
        wsBroken = true;
        finish("peer_close", "peer_cut", err, "tcp_to_ws");
        return;
      }
    }
  };

  const pumpDown = async () => {
    // After the end, keep pulling until the peer's Close so the closing handshake completes.
    for (;;) {
      let msg;
      try {
        msg = await ws.receive();
      } catch (err) {
        wsBroken = true;
        const code = ws.closeInfo?.code ?? 1006;
        result.closeCode ??= code;
        if (!ending) {
          const how = !opts.halfClose && v1NormalEnd(code) ? "clean" : "peer_cut";
          finish(firstEnd ?? "peer_close", how, err, "ws_to_tcp");
        }
        return;
      }
      if (msg === null) {
        const code = ws.closeInfo?.code ?? 1005;
        if (!ending) {
          const reason = ws.closeInfo?.reason ? `: ${ws.closeInfo.reason}` : "";
          if (opts.halfClose && !peerDone) {
            // A Close before the peer's eof means its data was cut off (a killed peer reaches us
            // through the relay as 1001): even a 1000 here is not a clean end.
            result.closeCode = code;
            finish(
              "peer_close",
              "peer_cut",
              new BridgeError(
                "closed_before_eof",
                `tunnel closed by peer before end of data (close ${code}${reason})`,
              ),
              "ws_to_tcp",
            );
          } else if (code === 1000) {
            // With half-close, a direction may have ended before: it is what ended the tunnel.
            finish(firstEnd ?? "peer_close", "clean");
          } else {
            result.closeCode = code;
            finish(
              firstEnd ?? "peer_close",
              !opts.halfClose && v1NormalEnd(code) ? "clean" : "peer_cut",
              new BridgeError("peer_closed", `websocket closed with code ${code}${reason}`),
              "ws_to_tcp",
            );
          }
        }
        return;
      }
      if (ending) continue;
      let data: Uint8Array;
      if (msg.type === "text") {
        if (opts.halfClose) {
          if (await control(msg.data)) return;
          continue;
        }
        data = encoder.encode(msg.data);
      } else {
        data = msg.data;
      }
      if (peerDone) {
        finish(
          "peer_close",
          "peer_cut",
          new BridgeError("protocol_error", "data received after eof"),
          "ws_to_tcp",
        );
        return;
      }
      try {
        await writeAll(local, data);
        result.wsToTcp += data.length;
      } catch (err) {
        finish(localCause(err), "local_cut", err, "ws_to_tcp");
        return;
      }
    }
  };

  /** Handles one control message; true when the pump should stop. */
  const control = async (text: string): Promise<boolean> => {
    let type: unknown;
    try {
      type = (JSON.parse(text) as { type?: unknown } | null)?.type;
    } catch {
      type = undefined;
    }
    // Unknown control messages are skipped so later features can add some.
    if (type !== "eof" || peerDone) return false;
    peerDone = true;
    try {
      await local.closeWrite();
    } catch (err) {
      finish(localCause(err), "local_cut", err, "ws_to_tcp");
      return true;
    }
    if (opts.endOnPeerEof) {
      eofOwed = !eofSent;
      finish(firstEnd ?? "peer_close", "clean");
    } else directionEnded("peer_close");
    return false;
  };

  const onAbort = () => finish(causeFromAbort(opts.signal?.reason), "cancel");
  if (opts.signal?.aborted) onAbort();
  else opts.signal?.addEventListener("abort", onAbort, { once: true });

  const pings: Promise<void>[] = [];
  const interval = opts.pingIntervalMs ?? DEFAULT_PING_INTERVAL;
  const pingTimer = interval > 0
    ? setInterval(() => {
      const p = ws.ping(opts.pingTimeoutMs ?? DEFAULT_PING_TIMEOUT).catch(() => {});
      pings.push(p);
      if (pings.length > 4) pings.shift();
    }, interval)
    : undefined;

  const up = pumpUp();
  const down = pumpDown();
  await ended;

  clearInterval(pingTimer);
  clearTimeout(lingerTimer);
  opts.signal?.removeEventListener("abort", onAbort);
  const how = ending ?? "clean";
  try {
    if (how !== "clean" && local.reset) {
      local.reset();
      result.localReset = true;
    } else local.close();
  } catch {
    // already closed
  }
  const [code, reason] = CLOSE_FOR[how];
  const closeWs = async () => {
    if (eofOwed) await ws.send(EOF_MESSAGE);
    await ws.close(code, reason);
  };
  const closing = wsBroken ? Promise.resolve(ws.closeNow()) : closeWs().catch(() => {
    ws.closeNow();
  });
  await Promise.allSettled([closing, up, down, ...pings]);
  await ws.closed.catch(() => {});
  return result;
}

/** Log attributes of a finished bridge, named as in the Go tool's `bridge ended` line. */
export function bridgeLogAttrs(r: BridgeResult): Record<string, unknown> {
  const attrs: Record<string, unknown> = {
    cause: r.cause,
    tcp_to_ws: r.tcpToWs,
    ws_to_tcp: r.wsToTcp,
  };
  if (r.error) attrs.error = r.error.message;
  if (r.tcpToWsErr) attrs.tcp_to_ws_err = r.tcpToWsErr.message;
  if (r.wsToTcpErr) attrs.ws_to_tcp_err = r.wsToTcpErr.message;
  if (r.closeCode !== undefined) attrs.close_code = r.closeCode;
  if (r.localReset) attrs.local_reset = true;
  return attrs;
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
