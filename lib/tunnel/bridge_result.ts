/**
 * What a finished bridge reports: why it ended, the bytes each way, the failures. The observer
 * hooks and the `bridge ended` log line read it; it imports nothing from the bridge itself.
 */
import { errorCode } from "../errors.ts";

export type BridgeCause =
  | "local_close"
  | "peer_close"
  | "timeout"
  | "user_cancel"
  | "unknown";

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
