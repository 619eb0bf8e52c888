/**
 * `arc port-forward`: a local TCP listener; every accepted connection gets its own Arc relay
 * WebSocket to the machine's port, carrying raw bytes. Credentials come from the session cache.
 */
import { errorMessage } from "../errors.ts";
import { acceptLoop } from "../net/accept_loop.ts";
import { type HostPort, joinHostPort } from "../net/host_port.ts";
import { listenTcp, tuneTcp } from "../net/listen.ts";
import { getLogger, type Logger } from "../observe/log.ts";
import { newId } from "../relay/ids.ts";
import type { TunnelObserver } from "../tunnel/observer.ts";
import { redactArc } from "./redact.ts";
import { ArcSession, type ArcSessionOptions } from "./session.ts";

export interface ArcPortForwardOptions extends ArcSessionOptions {
  bind: HostPort;
  /** Turn TCP keepalive on for accepted sockets (Deno cannot set the interval). */
  keepAlive: boolean;
  /** Stops accepting and tears the tunnels down; the promise then resolves. */
  signal: AbortSignal;
  /** Told the bound address (tests read the ephemeral port here). */
  onListening?(addr: Deno.NetAddr): void;
}

export async function runArcPortForward(opts: ArcPortForwardOptions): Promise<void> {
  const log = opts.logger ?? getLogger();
  const session = new ArcSession({ ...opts, logger: log });
  await session.start(opts.signal);
  opts.signal.throwIfAborted();

  const listener = listenTcp(opts.bind);
  log.info("arc port-forward listening", {
    bind: joinHostPort(listener.addr.hostname, listener.addr.port),
    resource: opts.resourceId,
    port: opts.port,
  });
  opts.onListening?.(listener.addr);

  const tunnels = new Set<Promise<void>>();
  try {
    // Nothing to drain: the bridges stop with `signal` (arc, like the Go tool, has no drain).
    await acceptLoop(listener, (conn) => {
      tuneTcp(conn, opts.keepAlive);
      const task = forward(
        session,
        conn,
        opts.signal,
        log.with({ bridge_id: newId() }),
        opts.observer,
      );
      tunnels.add(task);
      task.finally(() => tunnels.delete(task));
    }, {
      signal: opts.signal,
      onError: (err) => log.warn("accept failed", { error: errorMessage(err) }),
    });
  } finally {
    await Promise.allSettled([...tunnels]);
  }
}

async function forward(
  session: ArcSession,
  conn: Deno.TcpConn,
  signal: AbortSignal,
  log: Logger,
  observer?: TunnelObserver,
): Promise<void> {
  const target = `${session.target.resourceId}:${session.target.port}`;
  log.debug("connection requested", { target });
  let creds;
  try {
    creds = await session.credentials(signal);
  } catch (err) {
    log.warn("get relay credentials failed", { error: redactArc(errorMessage(err)) });
    if (!signal.aborted) {
      observer?.connectionError?.("sender", "auth_failed");
      observer?.relayDialEnded?.(err);
    }
    conn.close();
    return;
  }
  let ws;
  try {
    ws = await session.dial(creds, signal, log);
  } catch (err) {
    if (!signal.aborted) log.warn("forward failed", { error: redactArc(errorMessage(err)) });
    conn.close();
    return;
  }
  await session.bridge(conn, ws, signal, log);
}
