/**
 * The accept loop of every local TCP service (port-forward, socks5-proxy, arc port-forward), and
 * for the relay modes one task per local connection, tracked so that a stop (signal) closes the
 * listener, abandons connections whose tunnel is still opening, lets bridged tunnels finish for
 * `drainTimeoutMs` (or until `force`), then cancels them.
 */
import { errorMessage } from "../errors.ts";
import type { Logger } from "../observe/log.ts";
import { TaskTracker } from "../tunnel/tracker.ts";

/** What a connection handler gets to follow the service's stop. */
export interface ConnectionScope {
  /** Aborts as soon as the stop begins: for the handshake, relay dial and envelope exchange. */
  opening: AbortSignal;
  /** Aborts when the drain runs out (or is forced): for the bridge. */
  cancel: AbortSignal;
  /** Marks the tunnel as bridged (a drain waits for it); call the result when it has ended. */
  enterBridge(): () => void;
}

export interface AcceptOptions {
  /** Closes the listener and ends the loop. */
  signal: AbortSignal;
  logger: Logger;
  keepAlive: boolean;
}

export interface ServeOptions extends AcceptOptions {
  /** A second stop request: bridged tunnels are cancelled without waiting for the drain. */
  force?: AbortSignal;
  drainTimeoutMs: number;
  /** Handles one accepted connection; must close it. */
  handle(conn: Deno.TcpConn, scope: ConnectionScope): Promise<void>;
}

/** Backoff after a failed accept (e.g. EMFILE) so the loop does not spin. */
const ACCEPT_RETRY_MS = 100;

/**
 * Hands every accepted connection, its socket options set, to `onConn` until `signal` aborts or
 * the listener is closed; the listener is closed when this returns.
 */
export async function acceptConnections(
  listener: Deno.TcpListener,
  opts: AcceptOptions,
  onConn: (conn: Deno.TcpConn) => void,
): Promise<void> {
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
      onConn(conn);
    }
  } finally {
    opts.signal.removeEventListener("abort", stop);
    stop();
  }
}

export async function serveConnections(
  listener: Deno.TcpListener,
  opts: ServeOptions,
): Promise<void> {
  const tracker = new TaskTracker(opts.signal);
  const scope: ConnectionScope = {
    opening: tracker.stopSignal,
    cancel: tracker.cancelSignal,
    enterBridge: () => tracker.enterBridge(),
  };
  try {
    await acceptConnections(listener, opts, (conn) => tracker.track(opts.handle(conn, scope)));
  } finally {
    await tracker.drain(opts.drainTimeoutMs, { logger: opts.logger, force: opts.force });
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
