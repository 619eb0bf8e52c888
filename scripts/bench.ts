/**
 * `deno task bench`: tunnel numbers on loopback, every piece a separate process (relay-server,
 * relay-listener, relay-sender port-forward), measured against baselines taken in the same run:
 *
 * - single-stream throughput (BENCH_BYTES, default 512 MiB) vs a direct connection and `ssh -L`;
 * - connection set-up (serial connect + 1 KiB echo, BENCH_SETUP_ITERATIONS, default 200) p50/p95;
 * - listener RSS with BENCH_IDLE_TUNNELS (default 1000) idle tunnels;
 * - set-up over a wss:// relay-server vs a ws:// one (BENCH_WSS_ITERATIONS, default 100): TLS must
 *   not add delayed-ACK stalls. `deno task bench wss` runs only this one.
 *
 * Prints markdown tables (for the README). Also runs `benchWs()` from scripts/bench_ws.ts when it
 * exists. Not a test: numbers that miss a target are reported, not failed.
 */
import {
  type BoundProc,
  Proc,
  type RelayServer,
  startListener,
  startPortForward,
  startRelayServer,
} from "../tests/helpers/proc.ts";
import {
  readExactly,
  startEchoServer,
  type TcpTarget,
  writeAll,
} from "../tests/helpers/servers.ts";
import { sshAvailable, startSshd } from "../tests/helpers/sshd.ts";
import { makeTestCerts, opensslAvailable } from "../tests/helpers/certs.ts";

const MiB = 1024 * 1024;

function envNumber(name: string, def: number): number {
  const v = Deno.env.get(name);
  if (v === undefined || v === "") return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) {
    throw new Error(`${name} must be a positive number, got "${v}"`);
  }
  return n;
}

const BYTES = envNumber("BENCH_BYTES", 512 * MiB);
const RUNS = envNumber("BENCH_RUNS", 3);
const SETUP_ITERATIONS = envNumber("BENCH_SETUP_ITERATIONS", 200);
const IDLE_TUNNELS = envNumber("BENCH_IDLE_TUNNELS", 1000);
const WSS_ITERATIONS = envNumber("BENCH_WSS_ITERATIONS", 100);

const TARGETS = {
  throughputVsSsh: 0.6,
  setupP50Ms: 5,
  listenerRssMiB: 150,
  wssVsWsSetup: 1.5,
};

function progress(text: string) {
  console.error(`bench: ${text}`);
}

// ---------------------------------------------------------------------------------------------
// Targets.

/**
 * A sink that reads an 8-byte big-endian length, then that many bytes, then answers one byte:
 * the sender's clock stops only when every byte has crossed.
 */
function startSink(): TcpTarget {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  const serve = async (conn: Deno.Conn) => {
    const head = await readExactly(conn, 8);
    let left = Number(new DataView(head.buffer).getBigUint64(0));
    const buf = new Uint8Array(256 * 1024);
    while (left > 0) {
      const n = await conn.read(buf.subarray(0, Math.min(buf.length, left)));
      if (n === null) throw new Error(`sink: EOF with ${left} bytes to go`);
      left -= n;
    }
    await writeAll(conn, new Uint8Array([1]));
  };
  const loop = (async () => {
    try {
      for await (const conn of listener) {
        conns.add(conn);
        const t = serve(conn).catch((e) => progress(`sink: ${e}`)).finally(() => {
          conns.delete(conn);
          conn.close();
          tasks.delete(t);
        });
        tasks.add(t);
      }
    } catch {
      // closed
    }
  })();
  const port = (listener.addr as Deno.NetAddr).port;
  const close = async () => {
    listener.close();
    await loop;
    for (const c of conns) c.close();
    await Promise.all([...tasks]);
  };
  return {
    port,
    addr: `127.0.0.1:${port}`,
    accepted: 0,
    open: 0,
    close,
    [Symbol.asyncDispose]: close,
  };
}

// ---------------------------------------------------------------------------------------------
// Measurements.

/** MB/s (10^6 bytes per second) of one stream of `bytes` to the sink behind `port`. */
async function pushOnce(port: number, bytes: number): Promise<number> {
  const chunk = new Uint8Array(256 * 1024);
  crypto.getRandomValues(chunk.subarray(0, 65536));
  const started = performance.now();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    conn.setNoDelay(true);
    const head = new Uint8Array(8);
    new DataView(head.buffer).setBigUint64(0, BigInt(bytes));
    await writeAll(conn, head);
    for (let left = bytes; left > 0; left -= chunk.length) {
      await writeAll(conn, left >= chunk.length ? chunk : chunk.subarray(0, left));
    }
    await readExactly(conn, 1);
  } finally {
    conn.close();
  }
  return bytes / ((performance.now() - started) / 1000) / 1e6;
}

async function throughput(port: number): Promise<number[]> {
  await pushOnce(port, Math.min(BYTES, 16 * MiB)); // warm-up: JIT, TCP windows
  const out: number[] = [];
  for (let i = 0; i < RUNS; i++) out.push(await pushOnce(port, BYTES));
  return out;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

const median = (xs: number[]) => quantile([...xs].sort((a, b) => a - b), 0.5);

interface SetupStats {
  p50: number;
  p95: number;
  mean: number;
  max: number;
}

/** Serial: connect, write 1 KiB, read it back, close; milliseconds per iteration. */
async function setupLatency(port: number, iterations = SETUP_ITERATIONS): Promise<SetupStats> {
  const payload = new Uint8Array(1024);
  crypto.getRandomValues(payload);
  const once = async () => {
    const started = performance.now();
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      conn.setNoDelay(true);
      await writeAll(conn, payload);
      await readExactly(conn, payload.length);
    } finally {
      conn.close();
    }
    return performance.now() - started;
  };
  for (let i = 0; i < 10; i++) await once(); // warm-up
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) samples.push(await once());
  samples.sort((a, b) => a - b);
  return {
    p50: quantile(samples, 0.5),
    p95: quantile(samples, 0.95),
    mean: samples.reduce((a, b) => a + b, 0) / samples.length,
    max: samples[samples.length - 1],
  };
}

interface IdleResult {
  tunnels: number;
  before: Record<string, number>;
  after: Record<string, number>;
  openMs: number;
}

/** Opens `count` tunnels (each proven with a 1-byte echo), samples RSS, then closes them all. */
async function idleTunnels(
  port: number,
  procs: Record<string, Proc>,
  count: number,
): Promise<IdleResult> {
  const rss = () =>
    Object.fromEntries(Object.entries(procs).map(([k, p]) => [k, (p.mem()?.rss ?? NaN) / MiB]));
  const before = rss();
  const conns: Deno.TcpConn[] = [];
  const started = performance.now();
  try {
    // Batches keep the accept backlog and the relay's pending rendezvous reasonable.
    for (let i = 0; i < count; i += 50) {
      await Promise.all(Array.from({ length: Math.min(50, count - i) }, async () => {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        conns.push(conn);
        await writeAll(conn, new Uint8Array([7]));
        await readExactly(conn, 1);
      }));
    }
    const openMs = performance.now() - started;
    return { tunnels: conns.length, before, after: rss(), openMs };
  } finally {
    for (const c of conns) c.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The cast.

async function startSshForward(targetPort: number): Promise<
  { proc: Proc; port: number; cipher: string; [Symbol.asyncDispose](): Promise<void> } | undefined
> {
  if (!sshAvailable) return undefined;
  const sshd = await startSshd();
  const localPort = (() => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const p = (l.addr as Deno.NetAddr).port;
    l.close();
    return p;
  })();
  const opts = sshd.clientOptions.filter((o, i, all) =>
    !o.startsWith("LogLevel=") && !(o === "-o" && all[i + 1]?.startsWith("LogLevel="))
  );
  const proc = new Proc("ssh", [
    ...opts,
    "-v",
    "-N",
    "-o",
    "ExitOnForwardFailure=yes",
    "-L",
    `127.0.0.1:${localPort}:127.0.0.1:${targetPort}`,
    "-p",
    String(sshd.port),
    `${sshd.user}@127.0.0.1`,
  ], { name: "ssh -L" });
  try {
    const m = await proc.waitForLine(/kex: server->client cipher: (\S+)/, 20_000);
    await proc.waitForLine(/Entering interactive session/, 20_000);
    return {
      proc,
      port: localPort,
      cipher: m[1],
      async [Symbol.asyncDispose]() {
        await proc.kill("SIGTERM");
        await sshd[Symbol.asyncDispose]();
      },
    };
  } catch (err) {
    await proc.kill("SIGKILL");
    await sshd[Symbol.asyncDispose]();
    throw err;
  }
}

interface Tunnel {
  relay: RelayServer;
  listener: Proc;
  pf: BoundProc;
  [Symbol.asyncDispose](): Promise<void>;
}

/** The cast; with `tls`, relay-server serves wss:// and both clients trust its CA. */
async function startTunnel(
  target: string,
  hyco: string,
  tls?: { certFile: string; keyFile: string; caFile: string },
): Promise<Tunnel> {
  const quiet = ["--log-level", "info"];
  const serverArgs = tls ? ["--tls-cert", tls.certFile, "--tls-key", tls.keyFile] : [];
  const clientArgs = tls ? ["--relay-ca-cert", tls.caFile] : [];
  const relay = await startRelayServer({ globalArgs: quiet, args: serverArgs });
  const listener = await startListener(relay, { hyco, globalArgs: quiet, args: clientArgs });
  const pf = await startPortForward(relay, target, { hyco, globalArgs: quiet, args: clientArgs });
  return {
    relay,
    listener,
    pf,
    async [Symbol.asyncDispose]() {
      await pf[Symbol.asyncDispose]();
      await listener[Symbol.asyncDispose]();
      await relay[Symbol.asyncDispose]();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Report.

const f1 = (n: number) => Number.isFinite(n) ? n.toFixed(1) : "n/a";
const f2 = (n: number) => Number.isFinite(n) ? n.toFixed(2) : "n/a";
const ratio = (a: number, b: number) => Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : "n/a";
const verdict = (ok: boolean) => ok ? "met" : "**missed**";

function table(head: string[], rows: string[][]): string {
  return [
    `| ${head.join(" | ")} |`,
    `| ${head.map(() => "---").join(" | ")} |`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
}

interface WssSetup {
  ws: SetupStats;
  wss: SetupStats;
}

/** Serial connect + 1 KiB echo through the same cast over ws:// and over wss://. */
async function wssSetup(echoAddr: string): Promise<WssSetup | undefined> {
  if (!opensslAvailable) {
    progress("set-up ws vs wss: skipped (no openssl)");
    return undefined;
  }
  await using certs = await makeTestCerts();
  const tls = {
    certFile: `${certs.dir}/srv.crt`,
    keyFile: `${certs.dir}/srv.key`,
    caFile: certs.caFile,
  };
  let ws: SetupStats;
  {
    await using t = await startTunnel(echoAddr, "bench-ws");
    progress("set-up: port-forward over ws://");
    ws = await setupLatency(t.pf.port, WSS_ITERATIONS);
  }
  {
    await using t = await startTunnel(echoAddr, "bench-wss", tls);
    progress(`set-up: port-forward over wss:// (${t.relay.url})`);
    return { ws, wss: await setupLatency(t.pf.port, WSS_ITERATIONS) };
  }
}

function wssReport(r: WssSetup | undefined): string {
  if (!r) return "#### Set-up over wss:// vs ws://\n\nskipped: no openssl for a test certificate";
  const row = (name: string, s: SetupStats) => [
    name,
    f2(s.p50),
    f2(s.p95),
    f2(s.mean),
    f2(s.max),
    ratio(s.p50, r.ws.p50),
  ];
  const p50 = r.wss.p50 / r.ws.p50;
  return [
    `#### Set-up over wss:// vs ws:// (serial connect + 1 KiB echo, ${WSS_ITERATIONS} iterations)`,
    "",
    table(["relay-server", "p50 ms", "p95 ms", "mean ms", "max ms", "p50 vs ws://"], [
      row("ws://", r.ws),
      row("wss://", r.wss),
    ]),
    "",
    table(["target", "measured", "verdict"], [[
      `wss:// set-up p50 within ${TARGETS.wssVsWsSetup}× ws://`,
      ratio(r.wss.p50, r.ws.p50),
      verdict(p50 <= TARGETS.wssVsWsSetup),
    ]]),
  ].join("\n");
}

async function main() {
  if (Deno.args.includes("wss")) {
    await using echo = startEchoServer();
    console.log(wssReport(await wssSetup(echo.addr)));
    return;
  }
  const cpu = (await Deno.readTextFile("/proc/cpuinfo").catch(() => ""))
    .match(/model name\s*:\s*(.+)/)?.[1] ?? Deno.build.arch;
  progress(
    `${
      f1(BYTES / MiB)
    } MiB x ${RUNS} runs, ${SETUP_ITERATIONS} set-ups, ${IDLE_TUNNELS} idle tunnels`,
  );

  await using sink = startSink();
  await using echo = startEchoServer();

  // Throughput.
  progress("throughput: direct");
  const direct = await throughput(sink.port);
  let ssh: { mbps: number[]; cipher: string } | undefined;
  {
    await using fwd = await startSshForward(sink.port);
    if (fwd) {
      progress(`throughput: ssh -L (${fwd.cipher})`);
      ssh = { mbps: await throughput(fwd.port), cipher: fwd.cipher };
    } else {
      progress("throughput: ssh -L skipped (no sshd/ssh)");
    }
  }
  let tunnelMbps: number[];
  {
    await using t = await startTunnel(sink.addr, "bench-sink");
    progress("throughput: aztunnel port-forward");
    tunnelMbps = await throughput(t.pf.port);
  }

  // Set-up latency, and the idle-tunnel memory on the same cast.
  progress("set-up: direct");
  const setupDirect = await setupLatency(echo.port);
  let setupTunnel: SetupStats;
  let idle: IdleResult;
  {
    await using t = await startTunnel(echo.addr, "bench-echo");
    progress("set-up: aztunnel port-forward");
    setupTunnel = await setupLatency(t.pf.port);
    progress(`rss: ${IDLE_TUNNELS} idle tunnels`);
    idle = await idleTunnels(t.pf.port, {
      "relay-listener": t.listener,
      "relay-sender port-forward": t.pf.proc,
      "relay-server": t.relay.proc,
    }, IDLE_TUNNELS);
  }
  const wss = await wssSetup(echo.addr);

  const dMed = median(direct);
  const tMed = median(tunnelMbps);
  const sMed = ssh ? median(ssh.mbps) : NaN;
  const runs = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(" / ");
  const out: string[] = [];
  out.push(`### aztunnel loopback benchmark`);
  out.push("");
  out.push(
    `Machine: ${cpu}, ${navigator.hardwareConcurrency} cores; Deno ${Deno.version.deno}. ` +
      "Every box is a separate process on 127.0.0.1; the tunnel is sender → relay-server → listener.",
  );
  out.push("");
  out.push(`#### Single-stream throughput (${f1(BYTES / MiB)} MiB, median of ${RUNS} runs)`);
  out.push("");
  out.push(table(["path", "MB/s (median)", "runs", "vs direct", "vs ssh -L"], [
    ["direct TCP", dMed.toFixed(0), runs(direct), "1.00×", ratio(dMed, sMed)],
    ...(ssh
      ? [[`ssh -L (${ssh.cipher})`, sMed.toFixed(0), runs(ssh.mbps), ratio(sMed, dMed), "1.00×"]]
      : []),
    [
      "aztunnel port-forward",
      tMed.toFixed(0),
      runs(tunnelMbps),
      ratio(tMed, dMed),
      ratio(tMed, sMed),
    ],
  ]));
  out.push("");
  out.push(`#### Connection set-up (serial connect + 1 KiB echo, ${SETUP_ITERATIONS} iterations)`);
  out.push("");
  out.push(table(["path", "p50 ms", "p95 ms", "mean ms", "max ms", "p50 vs direct"], [
    [
      "direct TCP",
      f2(setupDirect.p50),
      f2(setupDirect.p95),
      f2(setupDirect.mean),
      f2(setupDirect.max),
      "1.00×",
    ],
    [
      "aztunnel port-forward",
      f2(setupTunnel.p50),
      f2(setupTunnel.p95),
      f2(setupTunnel.mean),
      f2(setupTunnel.max),
      ratio(setupTunnel.p50, setupDirect.p50),
    ],
  ]));
  out.push("");
  out.push(
    `#### Memory with ${idle.tunnels} idle tunnels (opened in ${f1(idle.openMs / 1000)} s)`,
  );
  out.push("");
  out.push(table(
    ["process", "RSS MiB, no tunnels", `RSS MiB, ${idle.tunnels} tunnels`, "KiB per tunnel"],
    Object.keys(idle.after).map((k) => [
      k,
      f1(idle.before[k]),
      f1(idle.after[k]),
      f1((idle.after[k] - idle.before[k]) * 1024 / Math.max(1, idle.tunnels)),
    ]),
  ));
  out.push("");
  const listenerRss = idle.after["relay-listener"];
  out.push("#### Targets");
  out.push("");
  out.push(table(["target", "measured", "verdict"], [
    [
      `throughput ≥ ${TARGETS.throughputVsSsh}× ssh -L`,
      ssh ? ratio(tMed, sMed) : "ssh -L not measured",
      ssh ? verdict(tMed / sMed >= TARGETS.throughputVsSsh) : "n/a",
    ],
    [
      `set-up p50 < ${TARGETS.setupP50Ms} ms`,
      `${f2(setupTunnel.p50)} ms`,
      verdict(setupTunnel.p50 < TARGETS.setupP50Ms),
    ],
    [
      `listener RSS < ${TARGETS.listenerRssMiB} MiB at ${IDLE_TUNNELS} tunnels`,
      `${f1(listenerRss)} MiB (${idle.tunnels} tunnels)`,
      verdict(listenerRss < TARGETS.listenerRssMiB && idle.tunnels === IDLE_TUNNELS),
    ],
  ]));
  out.push("");
  out.push(wssReport(wss));
  console.log(out.join("\n"));

  await runWsBench();
}

/** scripts/bench_ws.ts is optional (another module's benchmark); its tables follow ours. */
async function runWsBench() {
  const url = new URL("./bench_ws.ts", import.meta.url);
  try {
    await Deno.stat(url);
  } catch {
    return;
  }
  const specifier = url.href;
  const mod = await import(specifier) as {
    benchWs?: () => Promise<unknown>;
    markdownTable?: (rows: Record<string, unknown>[]) => string;
  };
  if (typeof mod.benchWs !== "function") return;
  progress("bench_ws.ts: benchWs()");
  const result = await mod.benchWs();
  let text: string;
  if (typeof result === "string") {
    text = result;
  } else if (Array.isArray(result) && result.length > 0) {
    const rows = result as Record<string, unknown>[];
    text = mod.markdownTable?.(rows) ??
      table(Object.keys(rows[0]), rows.map((r) => Object.values(r).map(String)));
  } else {
    return;
  }
  console.log(`\n#### WebSocket layer (scripts/bench_ws.ts)\n\n${text}`);
}

if (import.meta.main) await main();
