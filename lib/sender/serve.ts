/**
 * The accept loop shared by port-forward and socks5-proxy: one task per local connection, tracked
 * so that a stop (signal) closes the listener, lets open tunnels finish for `drainTimeoutMs`, then
 * cancels them.
 */
import { errorMessage } from "../errors.ts";
import type { Logger } from "../observe/log.ts";
import { TaskTracker } from "../tunnel/tracker.ts";

export interface ServeOptions {
  signal: AbortSignal;
  drainTimeoutMs: number;
  logger: Logger;
  keepAlive: boolean;
  /** Handles one accepted connection; must close it. `cancel` aborts when the drain runs out. */
  handle(conn: Deno.TcpConn, cancel: AbortSignal): Promise<void>;
}

/** Backoff after a failed accept (e.g. EMFILE) so the loop does not spin. */
const ACCEPT_RETRY_MS = 100;

export async function serveConnections(
  listener: Deno.TcpListener,
  opts: ServeOptions,
): Promise<void> {
  const tracker = new TaskTracker();
  const stop = () => {
    try {
      listener.close();
    } catch {
      // already closed
    }
  };
  if (opts.signal.aborted) stop();
  else opts.signal.addEventListener("abort", stop, { once: true });
  try {
    while (!opts.signal.aborted) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch (err) {
        if (opts.signal.aborted) break;
        if (err instanceof Deno.errors.BadResource) break;
        opts.logger.warn("accept failed", { error: errorMessage(err) });
        await pause(ACCEPT_RETRY_MS, opts.signal);
        continue;
      }
      try {
        conn.setNoDelay(true);
        if (opts.keepAlive) conn.setKeepAlive(true);
      } catch {
        // the client already left; the handler will notice
      }
      tracker.track(opts.handle(conn, tracker.cancelSignal));
    }
  } finally {
    opts.signal.removeEventListener("abort", stop);
    stop();
    await tracker.drain(opts.drainTimeoutMs);
  }
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
