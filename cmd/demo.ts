/**
 * `aztunnel demo`: the whole tunnel in one process on 127.0.0.1 — relay-server, a listener, a small
 * HTTP target, a port-forward and a SOCKS5 proxy — with a self-check through each, the commands to
 * try, and a clean stop on Ctrl-C. `--once` exits after the self-check (0 ok, 1 failed). With
 * `--metrics-addr` one ops server covers them all: the relay's and the tunnels' metrics in one
 * registry, ready once every component is up.
 */
import type { Command } from "@commander-js/extra-typings";
import { AztunnelError, errorMessage } from "../lib/errors.ts";
import { runListener } from "../lib/listener/service.ts";
import { getLogger, type Logger } from "../lib/observe/log.ts";
import { registerRelayServerMetrics } from "../lib/observe/metrics.ts";
import type { Readiness } from "../lib/observe/ops_server.ts";
import { parseRelayEndpoint } from "../lib/relay/endpoint.ts";
import { SasTokenProvider } from "../lib/relay/token.ts";
import type { RelayConfig } from "../lib/sender/open_tunnel.ts";
import { runPortForward } from "../lib/sender/port_forward.ts";
import { runSocks5Proxy } from "../lib/sender/socks5_proxy.ts";
import { type RelayServer, resolvePolicies, startRelayServer } from "../lib/server/mod.ts";
import { parseAllowlist } from "../lib/tunnel/allowlist.ts";
import { type Ops, relayServerCounts, runWithOps } from "./ops.ts";

const LOOPBACK = "127.0.0.1";
const ALLOW = ["127.0.0.1:*", "localhost:*"];
const TARGET_BODY = "hello from the aztunnel demo target\n";
/** Start-up and each self-check must finish well within this. */
const STEP_DEADLINE_MS = 15_000;
/** On stop, open tunnels get this long to finish. */
const DRAIN_MS = 2_000;

const enc = new TextEncoder();
const dec = new TextDecoder();

export function register(program: Command): void {
  program
    .command("demo")
    .description(
      "run a relay, listener, HTTP target, port-forward and SOCKS5 proxy on 127.0.0.1 and prove a round trip",
    )
    .option("--once", "exit after the self-check (0 ok, 1 failed)")
    .option("--hyco <name>", "hybrid connection name", "demo")
    .action(async (flags, cmd) => {
      // Per-connection INFO lines would bury the demo's own output; --log-level brings them back.
      // Only the components are quietened: the ops server's INFO line still tells where it is.
      const quiet = cmd.parent?.getOptionValueSource("logLevel") === "default";
      let ready = false;
      const readiness = (): Readiness =>
        ready ? { ready: true } : { ready: false, reason: "demo components not up" };
      await runWithOps(cmd, { readiness }, (ops) =>
        runDemo({
          once: flags.once === true,
          hyco: flags.hyco,
          quiet,
          ops,
          onReady: (up) => ready = up,
        }));
    });
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

interface Check {
  name: string;
  ok: boolean;
  ms: number;
  detail: string;
}

interface DemoOptions {
  once: boolean;
  hyco: string;
  /** Components log warnings and errors only. */
  quiet: boolean;
  ops: Ops;
  /** Every component is up (true), or the demo is stopping (false). */
  onReady: (up: boolean) => void;
}

async function runDemo(opts: DemoOptions): Promise<void> {
  const { ops } = opts;
  const root = getLogger({ component: "demo" });
  const log = opts.quiet ? warnAndAbove(root) : root;
  const { policies, generated } = resolvePolicies({}, Deno.env);
  const policy = policies[0];
  const stop = new AbortController();
  const onSignal = () => stop.abort(ops.signal.reason);
  if (ops.signal.aborted) onSignal();
  else ops.signal.addEventListener("abort", onSignal, { once: true });

  const tasks: Promise<void>[] = [];
  // A component that dies early must end the demo instead of leaving it half up.
  let failure: unknown;
  const run = (name: string, p: Promise<void>) =>
    tasks.push(p.catch((err) => {
      failure ??= new AztunnelError("demo_failed", `${name}: ${errorMessage(err)}`, { cause: err });
      stop.abort(failure);
    }));

  let server: RelayServer | undefined;
  let target: Deno.HttpServer<Deno.NetAddr> | undefined;
  try {
    server = await startRelayServer({
      bind: `${LOOPBACK}:0`,
      policies,
      logger: log.with({ component: "relay-server" }),
    });
    const running = server;
    if (ops.metrics) {
      registerRelayServerMetrics(ops.metrics.registry, () => relayServerCounts(running.stats()));
    }
    target = Deno.serve(
      { hostname: LOOPBACK, port: 0, onListen: () => {} },
      () => new Response(TARGET_BODY, { headers: { "content-type": "text/plain" } }),
    );
    const targetPort = target.addr.port;
    const relay: RelayConfig = {
      endpoint: parseRelayEndpoint(server.url),
      entity: opts.hyco,
      tokens: ops.tokens(new SasTokenProvider(policy.name, policy.key)),
    };
    const listenerUp = Promise.withResolvers<void>();
    const pfBound = Promise.withResolvers<Deno.NetAddr>();
    const socksBound = Promise.withResolvers<Deno.NetAddr>();
    run(
      "relay-listener",
      runListener({
        ...relay,
        allowlist: parseAllowlist(ALLOW),
        drainTimeoutMs: DRAIN_MS,
        signal: stop.signal,
        logger: log.with({ component: "relay-listener" }),
        observer: ops.observer,
        onConnectedChange: (up) => {
          ops.metrics?.setControlConnected(up);
          if (up) listenerUp.resolve();
        },
      }),
    );
    const sender = {
      relay,
      bind: { hostname: LOOPBACK, port: 0 },
      keepAlive: true,
      drainTimeoutMs: DRAIN_MS,
      signal: stop.signal,
      observer: ops.observer,
    };
    run(
      "port-forward",
      runPortForward({
        ...sender,
        target: `${LOOPBACK}:${targetPort}`,
        logger: log.with({ component: "port-forward" }),
        onListening: pfBound.resolve,
      }),
    );
    run(
      "socks5-proxy",
      runSocks5Proxy({
        ...sender,
        logger: log.with({ component: "socks5-proxy" }),
        onListening: socksBound.resolve,
      }),
    );
    const [, pf, socks] = await untilReady(
      Promise.all([listenerUp.promise, pfBound.promise, socksBound.promise]),
      stop.signal,
    );
    opts.onReady(true);

    console.log(
      describe(
        server.url,
        opts.hyco,
        targetPort,
        pf.port,
        socks.port,
        generated !== undefined,
        ops.opsAddr,
      ),
    );
    const checks = [
      await check("HTTP GET through the port-forward", async () => {
        const conn = await Deno.connect({ hostname: LOOPBACK, port: pf.port });
        return await httpGet(conn, `${LOOPBACK}:${pf.port}`);
      }),
      await check("HTTP GET through SOCKS5 (name: localhost)", async () => {
        const conn = await socks5Connect(socks.port, "localhost", targetPort);
        return await httpGet(conn, `localhost:${targetPort}`);
      }),
    ];
    console.log("Self-check:");
    for (const c of checks) {
      console.log(
        `  ${c.ok ? "ok  " : "FAIL"}  ${c.name.padEnd(42)} ${c.ms.toFixed(1)} ms  ${c.detail}`,
      );
    }
    const ok = checks.every((c) => c.ok);
    if (!ok) throw new AztunnelError("demo_failed", "demo self-check failed");
    console.log("");
    if (opts.once) {
      console.log("Self-check passed; stopping (--once).");
    } else {
      console.log(
        tryIt(
          server.url,
          opts.hyco,
          targetPort,
          pf.port,
          socks.port,
          policy,
          generated !== undefined,
        ),
      );
      console.log("\nRunning. Press Ctrl-C to stop.");
      await aborted(stop.signal);
      console.log("\nStopping…");
    }
  } finally {
    opts.onReady(false);
    ops.signal.removeEventListener("abort", onSignal);
    stop.abort(new DOMException("demo stopped", "AbortError"));
    await Promise.all(tasks);
    await target?.shutdown();
    await server?.close();
  }
  if (failure) throw failure;
}

/** Resolves with `p`, or rejects when `signal` aborts first (a component failed) or at the deadline. */
function untilReady<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return withDeadline(
    p,
    () => new AztunnelError("demo_failed", "demo components did not start in time"),
    signal,
  );
}

/** `p`, or a rejection with `timedOut()` after STEP_DEADLINE_MS, or with `signal`'s reason. */
async function withDeadline<T>(
  p: Promise<T>,
  timedOut: () => Error,
  signal?: AbortSignal,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(timedOut()), STEP_DEADLINE_MS);
        if (!signal) return;
        onAbort = () => reject(signal.reason);
        if (signal.aborted) onAbort();
        else signal.addEventListener("abort", onAbort, { once: true });
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  }
}

function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) =>
    signal.addEventListener("abort", () => resolve(), { once: true })
  );
}

async function check(name: string, fn: () => Promise<string>): Promise<Check> {
  const started = performance.now();
  try {
    const body = await withDeadline(fn(), () => new Error("timed out"));
    const ok = body === TARGET_BODY;
    const detail = ok ? `200 "${body.trim()}"` : `unexpected body ${JSON.stringify(body)}`;
    return { name, ok, ms: performance.now() - started, detail };
  } catch (err) {
    return { name, ok: false, ms: performance.now() - started, detail: errorMessage(err) };
  }
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    const got = await conn.read(out.subarray(off));
    if (got === null) throw new Error("connection closed early");
    off += got;
  }
  return out;
}

/** A one-shot HTTP/1.1 GET with `Connection: close`; returns the body of a 200 and closes `conn`. */
async function httpGet(conn: Deno.Conn, host: string): Promise<string> {
  try {
    await writeAll(
      conn,
      enc.encode(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`),
    );
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(16 * 1024);
    while (true) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    const text = dec.decode(new Uint8Array(chunks.flatMap((c) => [...c])));
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1];
    if (status !== "200") throw new Error(`HTTP status ${status ?? "missing"}`);
    return text.slice(text.indexOf("\r\n\r\n") + 4);
  } finally {
    conn.close();
  }
}

/** SOCKS5 CONNECT (no auth) by domain name; resolves with the tunnel after a success reply. */
async function socks5Connect(proxyPort: number, host: string, port: number): Promise<Deno.Conn> {
  const conn = await Deno.connect({ hostname: LOOPBACK, port: proxyPort });
  try {
    await writeAll(conn, new Uint8Array([5, 1, 0]));
    const method = await readExactly(conn, 2);
    if (method[0] !== 5 || method[1] !== 0) throw new Error("SOCKS5 proxy refused no-auth");
    const name = enc.encode(host);
    await writeAll(
      conn,
      new Uint8Array([5, 1, 0, 3, name.length, ...name, port >> 8, port & 0xff]),
    );
    const reply = await readExactly(conn, 10); // IPv4 bound address: the proxy listens on 127.0.0.1
    if (reply[1] !== 0) throw new Error(`SOCKS5 reply 0x${reply[1].toString(16).padStart(2, "0")}`);
    return conn;
  } catch (err) {
    conn.close();
    throw err;
  }
}

/** How to run this CLI again from a shell: the compiled binary, or `deno run -A main.ts`. */
function selfCommand(): string {
  const exe = Deno.execPath();
  if (!/(^|\/)deno(\.exe)?$/.test(exe)) return exe;
  const main = decodeURIComponent(new URL("../main.ts", import.meta.url).pathname);
  return `deno run -A ${main}`;
}

function describe(
  relayUrl: string,
  hyco: string,
  targetPort: number,
  pfPort: number,
  socksPort: number,
  generatedKey: boolean,
  opsAddr: string | undefined,
): string {
  const keyNote = generatedKey
    ? "a SAS key generated for this run"
    : "AZTUNNEL_KEY_NAME/AZTUNNEL_KEY";
  return [
    "aztunnel demo: everything below runs in this process, on 127.0.0.1 only.",
    "",
    `  relay-server     ${relayUrl}  (${keyNote})`,
    `  relay-listener   hybrid connection "${hyco}", --allow ${ALLOW.join(" --allow ")}`,
    `  HTTP target      http://${LOOPBACK}:${targetPort}/`,
    `  port-forward     ${LOOPBACK}:${pfPort} -> ${LOOPBACK}:${targetPort} (through the relay)`,
    `  socks5-proxy     ${LOOPBACK}:${socksPort}`,
    ...(opsAddr ? [`  metrics          http://${opsAddr}/metrics  (also /healthz, /readyz)`] : []),
    "",
  ].join("\n");
}

function tryIt(
  relayUrl: string,
  hyco: string,
  targetPort: number,
  pfPort: number,
  socksPort: number,
  policy: { name: string; key: string },
  generatedKey: boolean,
): string {
  const cli = selfCommand();
  // Printing the key is fine only when we made it up for this run; never echo the user's own.
  const exports = generatedKey
    ? `export AZTUNNEL_KEY_NAME=${policy.name} AZTUNNEL_KEY='${policy.key}'`
    : "# AZTUNNEL_KEY_NAME and AZTUNNEL_KEY: the values already in your environment";
  return [
    "Try it (in another terminal):",
    "",
    `  curl http://${LOOPBACK}:${pfPort}/`,
    `  curl --socks5-hostname ${LOOPBACK}:${socksPort} http://localhost:${targetPort}/`,
    "",
    "  # your own clients through the same relay (the listener allows 127.0.0.1:* and localhost:*):",
    `  ${exports}`,
    `  export AZTUNNEL_RELAY_NAME=${relayUrl} AZTUNNEL_HYCO_NAME=${hyco}`,
    `  ${cli} relay-sender port-forward ${LOOPBACK}:${targetPort} -b ${LOOPBACK}:8081`,
    `  ssh -o ProxyCommand="${cli} relay-sender connect --relay ${relayUrl} --hyco ${hyco} %h:%p" $USER@127.0.0.1`,
    "    (needs an sshd on 127.0.0.1:22)",
  ].join("\n");
}
