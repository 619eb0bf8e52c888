/**
 * `arc port-forward`: a local TCP listener; every accepted connection gets its own Arc relay
 * WebSocket to the machine's port, carrying raw bytes. Credentials come from the session cache.
 */
import { AztunnelError, errorMessage } from "../errors.ts";
import { getLogger, type Logger } from "../observe/log.ts";
import { newId } from "../relay/ids.ts";
import { bridge, bridgeLogAttrs } from "../tunnel/bridge.ts";
import type { TunnelObserver } from "../tunnel/observer.ts";
import { redactArc, redactAttrs } from "./redact.ts";
import { ArcSession, type ArcSessionOptions } from "./session.ts";

export interface ArcPortForwardOptions extends ArcSessionOptions {
  bind: { hostname: string; port: number };
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

  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ hostname: opts.bind.hostname, port: opts.bind.port });
  } catch (err) {
    throw new AztunnelError(
      "listen_failed",
      `listen ${opts.bind.hostname}:${opts.bind.port}: ${errorMessage(err)}`,
      { cause: err },
    );
  }
  const addr = listener.addr;
  const bound = addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
  log.info("arc port-forward listening", {
    bind: bound,
    resource: opts.resourceId,
    port: opts.port,
  });
  opts.onListening?.(addr);

  const stop = () => listener.close();
  opts.signal.addEventListener("abort", stop, { once: true });
  const tunnels = new Set<Promise<void>>();
  try {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch (err) {
        if (opts.signal.aborted) break;
        if (err instanceof Deno.errors.BadResource) break;
        log.warn("accept failed", { error: err });
        continue;
      }
      if (opts.keepAlive) {
        try {
          conn.setKeepAlive(true);
        } catch {
          // The socket may already be gone; the bridge will notice.
        }
      }
      const task = forward(
        session,
        conn,
        opts.signal,
        log.with({ bridge_id: newId() }),
        opts.observer,
      );
      tunnels.add(task);
      task.finally(() => tunnels.delete(task));
    }
  } finally {
    opts.signal.removeEventListener("abort", stop);
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
  observer?.connectionStarted?.("sender", target);
  const started = performance.now();
  const result = await bridge(conn, ws, { halfClose: false, signal });
  log.debug("bridge ended", redactAttrs(bridgeLogAttrs(result)));
  observer?.connectionEnded?.("sender", target, result, performance.now() - started);
}
