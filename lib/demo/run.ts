/**
 * The demo itself: the whole tunnel in one process on 127.0.0.1 — relay-server, a listener, a small
 * HTTP target, a port-forward and a SOCKS5 proxy — a self-check through each, the commands to try,
 * and a clean stop when `signal` aborts.
 */
import { deadline } from "../async.ts";
import { AztunnelError, errorMessage } from "../errors.ts";
import { runListener } from "../listener/service.ts";
import { getLogger, type Logger } from "../observe/log.ts";
import { parseRelayEndpoint } from "../relay/endpoint.ts";
import { SasTokenProvider, type TokenProvider } from "../relay/token.ts";
import type { SenderRelayConfig } from "../sender/open_tunnel.ts";
import { runPortForward } from "../sender/port_forward.ts";
import { runSocks5Proxy } from "../sender/socks5_proxy.ts";
import { type RelayServer, resolvePolicies, startRelayServer } from "../server/mod.ts";
import { parseAllowlist } from "../tunnel/allowlist.ts";
import type { TunnelObserver } from "../tunnel/observer.ts";
import { httpGet, socks5Connect } from "./clients.ts";
import { type DemoLayout, describe, tryIt } from "./text.ts";

const LOOPBACK = "127.0.0.1";
const ALLOW = ["127.0.0.1:*", "localhost:*"];
const TARGET_BODY = "hello from the aztunnel demo target\n";
/** Start-up and each self-check must finish well within this. */
const STEP_DEADLINE_MS = 15_000;
/** On stop, open tunnels get this long to finish. */
const DRAIN_MS = 2_000;

export interface DemoOptions {
  /** Exit after the self-check instead of serving until `signal`. */
  once: boolean;
  hyco: string;
  /** Components log warnings and errors only. */
  quiet: boolean;
  /** Stops the demo (SIGINT/SIGTERM). */
  signal: AbortSignal;
  observer?: TunnelObserver;
  /** The ops server's `host:port`, printed when set. */
  opsAddr?: string;
  /** Wraps the SAS token provider (metrics). */
  tokens?: (tokens: TokenProvider) => TokenProvider;
  /** The relay-server is up (to register its metrics). */
  onRelayServer?: (server: RelayServer) => void;
  /** The listener's control channel went up or down. */
  onControlConnected?: (up: boolean) => void;
  /** Every component is up (true), or the demo is stopping (false). */
  onReady: (up: boolean) => void;
}

/** `inner` without its debug and info lines. */
function warnAndAbove(inner: Logger): Logger {
  return {
    debug: () => {},
    info: () => {},
    warn: (msg, attrs) => inner.warn(msg, attrs),
    error: (msg, attrs) => inner.error(msg, attrs),
    with: (attrs) => warnAndAbove(inner.with(attrs)),
  };
}

/** The background components: the first to fail records why and stops the rest. */
class Components {
  readonly stop = new AbortController();
  failure: unknown;
  readonly #tasks: Promise<void>[] = [];

  run(name: string, p: Promise<void>): void {
    this.#tasks.push(p.catch((err) => {
      this.failure ??= new AztunnelError("demo_failed", `${name}: ${errorMessage(err)}`, {
        cause: err,
      });
      this.stop.abort(this.failure);
    }));
  }

  async settled(): Promise<void> {
    await Promise.all(this.#tasks);
  }
}

interface TunnelSetup extends Pick<DemoOptions, "observer" | "onControlConnected"> {
  relay: SenderRelayConfig;
  targetPort: number;
  log: Logger;
}

interface TunnelPorts {
  pfPort: number;
  socksPort: number;
}

/** Starts the listener, port-forward and SOCKS5 proxy; resolves once all three are up. */
async function startTunnels(c: Components, t: TunnelSetup): Promise<TunnelPorts> {
  const { relay, log } = t;
  const listenerUp = Promise.withResolvers<void>();
  const pfBound = Promise.withResolvers<Deno.NetAddr>();
  const socksBound = Promise.withResolvers<Deno.NetAddr>();
  const signal = c.stop.signal;
  c.run(
    "relay-listener",
    runListener({
      ...relay,
      allowlist: parseAllowlist(ALLOW),
      drainTimeoutMs: DRAIN_MS,
      signal,
      logger: log.with({ component: "relay-listener" }),
      observer: t.observer,
      onConnectedChange: (up) => {
        t.onControlConnected?.(up);
        if (up) listenerUp.resolve();
      },
    }),
  );
  const sender = {
    relay,
    bind: { hostname: LOOPBACK, port: 0 },
    keepAlive: true,
    drainTimeoutMs: DRAIN_MS,
    signal,
    observer: t.observer,
  };
  c.run(
    "port-forward",
    runPortForward({
      ...sender,
      target: `${LOOPBACK}:${t.targetPort}`,
      logger: log.with({ component: "port-forward" }),
      onListening: pfBound.resolve,
    }),
  );
  c.run(
    "socks5-proxy",
    runSocks5Proxy({
      ...sender,
      logger: log.with({ component: "socks5-proxy" }),
      onListening: socksBound.resolve,
    }),
  );
  // A component that dies early (signal aborts) ends the wait instead of a half-up demo.
  const [, pf, socks] = await deadline(
    Promise.all([listenerUp.promise, pfBound.promise, socksBound.promise]),
    STEP_DEADLINE_MS,
    {
      signal,
      onTimeout: () => new AztunnelError("demo_failed", "demo components did not start in time"),
    },
  );
  return { pfPort: pf.port, socksPort: socks.port };
}

interface Check {
  name: string;
  ok: boolean;
  ms: number;
  detail: string;
}

async function check(name: string, fn: () => Promise<string>): Promise<Check> {
  const started = performance.now();
  try {
    const body = await deadline(fn(), STEP_DEADLINE_MS, {
      onTimeout: () => new Error("timed out"),
    });
    const ok = body === TARGET_BODY;
    const detail = ok ? `200 "${body.trim()}"` : `unexpected body ${JSON.stringify(body)}`;
    return { name, ok, ms: performance.now() - started, detail };
  } catch (err) {
    return { name, ok: false, ms: performance.now() - started, detail: errorMessage(err) };
  }
}

/** One HTTP GET through each tunnel, printed; throws when one fails. */
async function selfCheck(l: DemoLayout): Promise<void> {
  const checks = [
    await check("HTTP GET through the port-forward", async () => {
      const conn = await Deno.connect({ hostname: l.host, port: l.pfPort });
      return await httpGet(conn, `${l.host}:${l.pfPort}`);
    }),
    await check("HTTP GET through SOCKS5 (name: localhost)", async () => {
      const conn = await socks5Connect({
        proxyHost: l.host,
        proxyPort: l.socksPort,
        host: "localhost",
        port: l.targetPort,
      });
      return await httpGet(conn, `localhost:${l.targetPort}`);
    }),
  ];
  console.log("Self-check:");
  for (const c of checks) {
    console.log(
      `  ${c.ok ? "ok  " : "FAIL"}  ${c.name.padEnd(42)} ${c.ms.toFixed(1)} ms  ${c.detail}`,
    );
  }
  if (!checks.every((c) => c.ok)) throw new AztunnelError("demo_failed", "demo self-check failed");
}

function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) =>
    signal.addEventListener("abort", () => resolve(), { once: true })
  );
}

export async function runDemo(opts: DemoOptions): Promise<void> {
  const root = getLogger({ component: "demo" });
  const log = opts.quiet ? warnAndAbove(root) : root;
  const { policies, generated } = resolvePolicies({}, Deno.env);
  const policy = policies[0];
  const c = new Components();
  const onSignal = () => c.stop.abort(opts.signal.reason);
  if (opts.signal.aborted) onSignal();
  else opts.signal.addEventListener("abort", onSignal, { once: true });

  let server: RelayServer | undefined;
  let target: Deno.HttpServer<Deno.NetAddr> | undefined;
  try {
    server = await startRelayServer({
      bind: `${LOOPBACK}:0`,
      policies,
      logger: log.with({ component: "relay-server" }),
    });
    opts.onRelayServer?.(server);
    target = Deno.serve(
      { hostname: LOOPBACK, port: 0, onListen: () => {} },
      () => new Response(TARGET_BODY, { headers: { "content-type": "text/plain" } }),
    );
    const sas = new SasTokenProvider(policy.name, policy.key);
    const relay: SenderRelayConfig = {
      endpoint: parseRelayEndpoint(server.url),
      entity: opts.hyco,
      tokens: opts.tokens ? opts.tokens(sas) : sas,
    };
    const ports = await startTunnels(c, {
      relay,
      targetPort: target.addr.port,
      log,
      observer: opts.observer,
      onControlConnected: opts.onControlConnected,
    });
    opts.onReady(true);

    const layout: DemoLayout = {
      relayUrl: server.url,
      hyco: opts.hyco,
      allow: ALLOW,
      host: LOOPBACK,
      targetPort: target.addr.port,
      ...ports,
      policy,
      generatedKey: generated !== undefined,
      opsAddr: opts.opsAddr,
    };
    console.log(describe(layout));
    await selfCheck(layout);
    console.log("");
    if (opts.once) {
      console.log("Self-check passed; stopping (--once).");
    } else {
      console.log(tryIt(layout));
      console.log("\nRunning. Press Ctrl-C to stop.");
      await aborted(c.stop.signal);
      console.log("\nStopping…");
    }
  } finally {
    opts.onReady(false);
    opts.signal.removeEventListener("abort", onSignal);
    c.stop.abort(new DOMException("demo stopped", "AbortError"));
    await c.settled();
    await target?.shutdown();
    await server?.close();
  }
  if (c.failure) throw c.failure;
}
