/**
 * The loopback benchmark: throughput vs direct and `ssh -L`, serial set-up latency, listener RSS
 * with many idle tunnels, each against the targets of the first issues.
 */
import { startSshForward, startTunnel } from "./cast.ts";
import { envNumber, MiB, progress } from "./env.ts";
import { type IdleResult, idleTunnels, setupLatency } from "./latency.ts";
import { BYTES, RUNS, startSink, throughput } from "./sink.ts";
import { median, type SetupStats } from "./stats.ts";
import { f1, f2, ratio, table, verdict } from "./table.ts";

const SETUP_ITERATIONS = envNumber("BENCH_SETUP_ITERATIONS", 200);
const IDLE_TUNNELS = envNumber("BENCH_IDLE_TUNNELS", 1000);

const TARGETS = { throughputVsSsh: 0.6, setupP50Ms: 5, listenerRssMiB: 150 };

export interface LoopbackResult {
  direct: number[];
  ssh?: { mbps: number[]; cipher: string };
  tunnel: number[];
  setupDirect: SetupStats;
  setupTunnel: SetupStats;
  idle: IdleResult;
}

async function measureThroughput(): Promise<Pick<LoopbackResult, "direct" | "ssh" | "tunnel">> {
  await using sink = startSink();
  progress("throughput: direct");
  const direct = await throughput(sink.port);
  let ssh: LoopbackResult["ssh"];
  {
    await using fwd = await startSshForward(sink.port);
    if (fwd) {
      progress(`throughput: ssh -L (${fwd.cipher})`);
      ssh = { mbps: await throughput(fwd.port), cipher: fwd.cipher };
    } else {
      progress("throughput: ssh -L skipped (no sshd/ssh)");
    }
  }
  await using t = await startTunnel(sink.addr, "bench-sink");
  progress("throughput: aztunnel port-forward");
  return { direct, ssh, tunnel: await throughput(t.pf.port) };
}

/** Every loopback measurement; set-up latency and idle memory share one cast. */
export async function measureLoopback(echo: { port: number; addr: string }): Promise<
  LoopbackResult
> {
  progress(
    `${f1(BYTES / MiB)} MiB x ${RUNS} runs, ${SETUP_ITERATIONS} set-ups, ` +
      `${IDLE_TUNNELS} idle tunnels`,
  );
  const tp = await measureThroughput();
  progress("set-up: direct");
  const setupDirect = await setupLatency(echo.port, SETUP_ITERATIONS);
  await using t = await startTunnel(echo.addr, "bench-echo");
  progress("set-up: aztunnel port-forward");
  const setupTunnel = await setupLatency(t.pf.port, SETUP_ITERATIONS);
  progress(`rss: ${IDLE_TUNNELS} idle tunnels`);
  const idle = await idleTunnels(t.pf.port, {
    "relay-listener": t.listener,
    "relay-sender port-forward": t.pf.proc,
    "relay-server": t.relay.proc,
  }, IDLE_TUNNELS);
  return { ...tp, setupDirect, setupTunnel, idle };
}

function throughputTable(r: LoopbackResult): string {
  const dMed = median(r.direct);
  const tMed = median(r.tunnel);
  const sMed = r.ssh ? median(r.ssh.mbps) : NaN;
  const runs = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(" / ");
  return table(["path", "MB/s (median)", "runs", "vs direct", "vs ssh -L"], [
    ["direct TCP", dMed.toFixed(0), runs(r.direct), "1.00×", ratio(dMed, sMed)],
    ...(r.ssh
      ? [[
        `ssh -L (${r.ssh.cipher})`,
        sMed.toFixed(0),
        runs(r.ssh.mbps),
        ratio(sMed, dMed),
        "1.00×",
      ]]
      : []),
    [
      "aztunnel port-forward",
      tMed.toFixed(0),
      runs(r.tunnel),
      ratio(tMed, dMed),
      ratio(tMed, sMed),
    ],
  ]);
}

function setupTable(r: LoopbackResult): string {
  const row = (name: string, s: SetupStats, vs: string) => [
    name,
    f2(s.p50),
    f2(s.p95),
    f2(s.mean),
    f2(s.max),
    vs,
  ];
  return table(["path", "p50 ms", "p95 ms", "mean ms", "max ms", "p50 vs direct"], [
    row("direct TCP", r.setupDirect, "1.00×"),
    row("aztunnel port-forward", r.setupTunnel, ratio(r.setupTunnel.p50, r.setupDirect.p50)),
  ]);
}

function memoryTable({ idle }: LoopbackResult): string {
  return table(
    ["process", "RSS MiB, no tunnels", `RSS MiB, ${idle.tunnels} tunnels`, "KiB per tunnel"],
    Object.keys(idle.after).map((k) => [
      k,
      f1(idle.before[k]),
      f1(idle.after[k]),
      f1((idle.after[k] - idle.before[k]) * 1024 / Math.max(1, idle.tunnels)),
    ]),
  );
}

function targetsTable(r: LoopbackResult): string {
  const tMed = median(r.tunnel);
  const sMed = r.ssh ? median(r.ssh.mbps) : NaN;
  const listenerRss = r.idle.after["relay-listener"];
  return table(["target", "measured", "verdict"], [
    [
      `throughput ≥ ${TARGETS.throughputVsSsh}× ssh -L`,
      r.ssh ? ratio(tMed, sMed) : "ssh -L not measured",
      r.ssh ? verdict(tMed / sMed >= TARGETS.throughputVsSsh) : "n/a",
    ],
    [
      `set-up p50 < ${TARGETS.setupP50Ms} ms`,
      `${f2(r.setupTunnel.p50)} ms`,
      verdict(r.setupTunnel.p50 < TARGETS.setupP50Ms),
    ],
    [
      `listener RSS < ${TARGETS.listenerRssMiB} MiB at ${IDLE_TUNNELS} tunnels`,
      `${f1(listenerRss)} MiB (${r.idle.tunnels} tunnels)`,
      verdict(listenerRss < TARGETS.listenerRssMiB && r.idle.tunnels === IDLE_TUNNELS),
    ],
  ]);
}

export async function loopbackReport(r: LoopbackResult): Promise<string> {
  const cpu = (await Deno.readTextFile("/proc/cpuinfo").catch(() => ""))
    .match(/model name\s*:\s*(.+)/)?.[1] ?? Deno.build.arch;
  return [
    "### aztunnel loopback benchmark",
    "",
    `Machine: ${cpu}, ${navigator.hardwareConcurrency} cores; Deno ${Deno.version.deno}. ` +
    "Every box is a separate process on 127.0.0.1; the tunnel is sender → relay-server → listener.",
    "",
    `#### Single-stream throughput (${f1(BYTES / MiB)} MiB, median of ${RUNS} runs)`,
    "",
    throughputTable(r),
    "",
    `#### Connection set-up (serial connect + 1 KiB echo, ${SETUP_ITERATIONS} iterations)`,
    "",
    setupTable(r),
    "",
    `#### Memory with ${r.idle.tunnels} idle tunnels (opened in ${f1(r.idle.openMs / 1000)} s)`,
    "",
    memoryTable(r),
    "",
    "#### Targets",
    "",
    targetsTable(r),
  ].join("\n");
}
