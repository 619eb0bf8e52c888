/**
 * The data phase of a tunnel (reference §2.4): bytes from a local stream become BINARY messages of
 * at most 32768 bytes, and every incoming message's payload is written back to the stream. Each pump
 * waits for its previous write before reading again, so a slow end pushes back instead of buffering.
 *
 * Plain v1 (a Go peer): the first end of either direction ends the tunnel. With the negotiated
 * `half-close` feature, TEXT messages are control messages: a local EOF is sent as `{"type":"eof"}`
 * and a received one becomes `closeWrite()`; the other direction keeps flowing and the tunnel ends
 * once both directions have ended (or the peer closes the WebSocket).
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
  close(): void;
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
}

export const EOF_MESSAGE = '{"type":"eof"}';
const DEFAULT_PING_INTERVAL = 30_000;
const DEFAULT_PING_TIMEOUT = 10_000;
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
 * Runs the tunnel until it ends, then closes `local` and ends the WebSocket with Close 1000 "done"
 * (or drops it when it already failed). Never rejects.
 */
export async function bridge(
  local: ByteStream,
  ws: MessageSocket,
  opts: BridgeOptions,
): Promise<BridgeResult> {
  const result: BridgeResult = { cause: "unknown", tcpToWs: 0, wsToTcp: 0 };
  let ending = false;
  let firstEnd: BridgeCause | undefined;
  let localDone = false;
  let eofSent = false;
  let peerDone = false;
  /** endOnPeerEof ended the tunnel: our eof is still owed, or the peer sees a truncated tunnel. */
  let eofOwed = false;
  let wsBroken = false;
  const { promise: ended, resolve: endNow } = Promise.withResolvers<void>();

  const finish = (cause: BridgeCause, err?: unknown, dir?: "tcp_to_ws" | "ws_to_tcp") => {
    if (ending) return;
    ending = true;
    result.cause = cause;
    if (err !== undefined) {
      const e = asError(err);
      result.error = e;
      if (dir === "tcp_to_ws") result.tcpToWsErr = e;
      if (dir === "ws_to_tcp") result.wsToTcpErr = e;
    }
    endNow();
  };
  /** One direction ended normally; with half-close the tunnel ends once both have. */
  const directionEnded = (cause: BridgeCause) => {
    firstEnd ??= cause;
    if (!opts.halfClose || (localDone && peerDone)) finish(firstEnd);
  };

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
        if (!ending) finish(localCause(err), err, "tcp_to_ws");
        return;
      }
      if (ending) return;
      try {
        if (n === null) {
          if (opts.halfClose) {
            eofSent = true;
            await ws.send(EOF_MESSAGE);
          }
          localDone = true;
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
        if (!ending) finish("peer_close", err, "tcp_to_ws");
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
        result.closeCode ??= ws.closeInfo?.code ?? 1006;
        if (!ending) finish("peer_close", err, "ws_to_tcp");
        return;
      }
      if (msg === null) {
        const code = ws.closeInfo?.code ?? 1005;
        if (!ending) {
          if (opts.halfClose && !peerDone) {
            // A Close before the peer's eof means its data was cut off (a killed peer reaches us
            // through the relay as 1001): even a 1000 here is not a clean end.
            result.closeCode = code;
            const reason = ws.closeInfo?.reason ? `: ${ws.closeInfo.reason}` : "";
            finish(
              "peer_close",
              new BridgeError(
                "closed_before_eof",
                `tunnel closed by peer before end of data (close ${code}${reason})`,
              ),
              "ws_to_tcp",
            );
          } else if (code === 1000) {
            // With half-close, a direction may have ended before: it is what ended the tunnel.
            finish(firstEnd ?? "peer_close");
          } else {
            result.closeCode = code;
            const reason = ws.closeInfo?.reason ? `: ${ws.closeInfo.reason}` : "";
            finish(
              "peer_close",
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
          new BridgeError("protocol_error", "data received after eof"),
          "ws_to_tcp",
        );
        return;
      }
      try {
        await writeAll(local, data);
        result.wsToTcp += data.length;
      } catch (err) {
        if (!ending) finish(localCause(err), err, "ws_to_tcp");
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
      if (!ending) finish(localCause(err), err, "ws_to_tcp");
      return true;
    }
    if (opts.endOnPeerEof) {
      eofOwed = !eofSent;
      finish(firstEnd ?? "peer_close");
    } else directionEnded("peer_close");
    return false;
  };

  const onAbort = () => finish(causeFromAbort(opts.signal?.reason));
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
  opts.signal?.removeEventListener("abort", onAbort);
  try {
    local.close();
  } catch {
    // already closed
  }
  const closeClean = async () => {
    if (eofOwed) await ws.send(EOF_MESSAGE);
    await ws.close(1000, "done");
  };
  const closing = wsBroken ? Promise.resolve(ws.closeNow()) : closeClean().catch(() => {
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
