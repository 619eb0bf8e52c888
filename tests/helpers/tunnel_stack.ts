/**
 * In-process stack for the tunnel integration tests: the local relay (lib/server), a listener
 * service, the sender services on an ephemeral port, targets, and log capture with event waits.
 * Everything is AsyncDisposable, so a test declares what it needs with `await using`; declare the
 * target before the stack, so that the tunnels are gone before the target waits for its handlers.
 */
import { type ListenerOptions, runListener } from "../../lib/listener/service.ts";
import { getLogger } from "../../lib/observe/log.ts";
import { parseRelayEndpoint, type RelayEndpoint } from "../../lib/relay/endpoint.ts";
import { SasTokenProvider } from "../../lib/relay/token.ts";
import type { SenderRelayConfig } from "../../lib/sender/open_tunnel.ts";
import { type PortForwardOptions, runPortForward } from "../../lib/sender/port_forward.ts";
import type { TunnelServiceOptions } from "../../lib/sender/tunnel_service.ts";
import { type RelayServer, startRelayServer } from "../../lib/server/mod.ts";
import { writeAll } from "./servers.ts";
import { closeQuietly } from "../../lib/async.ts";
import { captureLogs, type LogCapture } from "./logs.ts";

export const enc = new TextEncoder();
export const dec = new TextDecoder();

const KEY_NAME = "test-policy";
const KEY = "c2VjcmV0LWtleS1mb3ItdGVzdHM=";

export interface LocalRelay {
  server: RelayServer;
  endpoint: RelayEndpoint;
  /** For senders: hybrid connection `hc`, SAS tokens, fast dial retries. */
  relay: SenderRelayConfig;
}

/** relay-server on 127.0.0.1:0 with one SAS policy that has every right. */
export async function startLocalRelay(): Promise<LocalRelay> {
  const server = await startRelayServer({
    bind: "127.0.0.1:0",
    policies: [{ name: KEY_NAME, key: KEY, rights: ["Listen", "Send", "Manage"] }],
    logger: getLogger({ side: "relay" }),
  });
  const endpoint = parseRelayEndpoint(server.url);
  const tokens = new SasTokenProvider(KEY_NAME, KEY);
  return { server, endpoint, relay: { endpoint, entity: "hc", tokens, retryBaseMs: 50 } };
}

export interface Stack extends AsyncDisposable {
  logs: LogCapture;
  server: RelayServer;
  relay: SenderRelayConfig;
  /** Stops the listener (drain) and then the relay; resolves when everything is released. */
  stopListener(): Promise<void>;
  close(): Promise<void>;
}

/** Relay + listener (connected). `listener` overrides listener options. */
export async function startStack(
  listener: Partial<Omit<ListenerOptions, "endpoint" | "entity" | "tokens" | "signal">> = {},
): Promise<Stack> {
  const logs = await captureLogs();
  const { server, endpoint, relay } = await startLocalRelay();
  const ac = new AbortController();
  const up = Promise.withResolvers<void>();
  const running = runListener({
    endpoint,
    entity: relay.entity,
    tokens: relay.tokens,
    allowlist: null,
    signal: ac.signal,
    logger: getLogger({ side: "listener" }),
    onConnectedChange: (isUp) => isUp && up.resolve(),
    handler: { pingIntervalMs: 0 },
    ...listener,
  });
  await up.promise;
  let stopped: Promise<void> | undefined;
  const stopListener = () => {
    ac.abort(new DOMException("shutdown requested", "AbortError"));
    return stopped ??= running;
  };
  const close = async () => {
    await stopListener();
    await server.close();
    await logs.stop();
  };
  return { logs, server, relay, stopListener, close, [Symbol.asyncDispose]: close };
}

/** A target dial that never returns: only the listener's stop ends it. */
export const hangingDial = (_target: string, o: { signal?: AbortSignal }): Promise<never> =>
  new Promise<never>((_, reject) =>
    o.signal?.addEventListener("abort", () => reject(o.signal?.reason), { once: true })
  );

export interface LocalService extends AsyncDisposable {
  port: number;
  connect(): Promise<Deno.TcpConn>;
  /** The first Ctrl-C: stop accepting, drain; resolves with the service's end. */
  stop(): Promise<void>;
  /** The second Ctrl-C. */
  force(): void;
}

type ServiceDefaults = "bind" | "keepAlive" | "drainTimeoutMs" | "signal" | "force" | "logger";

/**
 * Runs a sender service (runPortForward, runSocks5Proxy) on 127.0.0.1:0, keepalive on, a 5 s
 * drain, logging as side=sender; resolves once it listens. `opts` may override any default.
 */
export async function startService<O extends TunnelServiceOptions>(
  run: (opts: O) => Promise<void>,
  opts: Omit<O, ServiceDefaults> & Partial<Pick<O, ServiceDefaults>>,
): Promise<LocalService> {
  const ac = new AbortController();
  const force = new AbortController();
  const bound = Promise.withResolvers<Deno.NetAddr>();
  const running = run({
    bind: { hostname: "127.0.0.1", port: 0 },
    keepAlive: true,
    drainTimeoutMs: 5000,
    signal: ac.signal,
    force: force.signal,
    logger: getLogger({ side: "sender" }),
    ...opts,
    onListening: (addr: Deno.NetAddr) => {
      opts.onListening?.(addr);
      bound.resolve(addr);
    },
  } as O);
  const { port } = await bound.promise;
  const stop = () => {
    ac.abort(new DOMException("shutdown requested", "AbortError"));
    return running;
  };
  return {
    port,
    connect: () => Deno.connect({ hostname: "127.0.0.1", port }),
    stop,
    force: () => force.abort(new DOMException("second shutdown request", "AbortError")),
    [Symbol.asyncDispose]: stop,
  };
}

export interface Target extends AsyncDisposable {
  port: number;
  /** `127.0.0.1:PORT` */
  addr: string;
  /** Stops accepting and waits for every `serve` to return (it is not cut off). */
  close(): Promise<void>;
}

/** A TCP target on 127.0.0.1 running `serve` for each connection. */
export function startTarget(serve: (conn: Deno.TcpConn) => Promise<void>): Target {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const tasks = new Set<Promise<void>>();
  const accepting = (async () => {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await l.accept();
      } catch {
        return;
      }
      const t = serve(conn).catch(() => {}).finally(() => {
        closeQuietly(conn);
        tasks.delete(t);
      });
      tasks.add(t);
    }
  })();
  const close = async () => {
    l.close();
    await accepting;
    await Promise.all([...tasks]);
  };
  return {
    port: l.addr.port,
    addr: `127.0.0.1:${l.addr.port}`,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Echo: request bytes back upper-cased until EOF, then a trailer and a half-close. */
export async function upperEcho(conn: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    await writeAll(conn, enc.encode(dec.decode(buf.subarray(0, n)).toUpperCase()));
  }
  await writeAll(conn, enc.encode("<end>"));
  await conn.closeWrite();
  while (await conn.read(buf) !== null) { /* until the tunnel closes */ }
}

/** Plain echo until EOF. */
export async function echo(conn: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) return;
    await writeAll(conn, buf.subarray(0, n));
  }
}

/** runPortForward to `target` through `relay` (see startService). */
export function startPortForward(
  relay: SenderRelayConfig,
  target: string,
  extra: Partial<PortForwardOptions> = {},
): Promise<LocalService> {
  return startService(runPortForward, { relay, target, ...extra });
}
