/**
 * `deno task bench delay`: the delay model (issue 10). Through delay proxies at D ms one way, the
 * floor for "connect, send a byte, get its echo" through the relay is 4·D; each latency is shown
 * in ms and as a multiple of it, before (`--pool-max 0`, or today's build without the flag), with
 * warm legs but no shared ones (`--pool-streams 0`: the pool alone against bursts), and after
 * (defaults: pool and shared legs; `connect` through a running `relay-sender agent`). A burst of
 * bulk uploads shows what sharing costs in throughput.
 */
import { delay } from "../../lib/async.ts";
import { type CliFeatures, detectCliFeatures } from "./cli_features.ts";
import { type DelayCast, startDelayCast } from "./delay_cast.ts";
import {
  bulkBurst,
  burstTrips,
  connectTrips,
  echoTrip,
  serialTrips,
  startupTrips,
} from "./delay_measure.ts";
import { envNumber, progress } from "./env.ts";
import { summarize } from "./stats.ts";
import { f1, table, verdict } from "./table.ts";

const D = envNumber("BENCH_DELAY_MS", 25);
const SERIAL = envNumber("BENCH_DELAY_SERIAL", 30);
const BURST_ROUNDS = envNumber("BENCH_DELAY_BURST_ROUNDS", 5);
/** Between bursts: the first finds the pool at its floor, the later ones what it learned. */
const BURST_GAP_MS = envNumber("BENCH_DELAY_BURST_GAP_MS", 3000);
const CONNECTS = envNumber("BENCH_DELAY_CONNECTS", 10);
/** Between serial connections, and before measuring: time for a pool to refill. */
const GAP_MS = envNumber("BENCH_DELAY_GAP_MS", 500);
const SETTLE_MS = envNumber("BENCH_DELAY_SETTLE_MS", 2000);
const BURST_WIDTH = 16;
const BULK_WIDTH = envNumber("BENCH_DELAY_BULK_WIDTH", 4);
const BULK_BYTES = envNumber("BENCH_DELAY_BULK_MIB", 4) * 1024 * 1024;
const TARGETS = { serial: 1.5, burst: 3, agentConnect: 2.2 };

/** A latency in ms, or why there is none. */
type Measured = number | string;

interface Column {
  label: string;
  serialP50: Measured;
  /** p95 of the first burst (the pool at its floor), of the later ones, of all. */
  burstFirstP95: Measured;
  burstLaterP95: Measured;
  burstP95: Measured;
  /** Aggregate MB/s of BULK_WIDTH uploads at once, the pool at its floor. */
  bulkMBps: Measured;
  connectP50: Measured;
  agentP50: Measured;
}

export interface DelayResult {
  delayMs: number;
  features: CliFeatures;
  /** p50 of `aztunnel --version`: process start-up, inside every `connect` figure. */
  startupP50: number;
  before: Column;
  /** The pool without shared legs (`--pool-streams 0`), port-forward figures only. */
  poolOnly: Column;
  after: Column;
}

/** `connect` p50 through a running `relay-sender agent` (its socket in a private directory). */
async function agentConnect(cast: DelayCast): Promise<Measured> {
  const dir = await Deno.makeTempDir({ prefix: "aztunnel_bench_agent_" });
  try {
    await Deno.chmod(dir, 0o700);
    const env = { XDG_RUNTIME_DIR: dir };
    await using _agent = await cast.startAgent(env);
    progress("delay: connect through relay-sender agent");
    await connectTrips(cast, 1, env);
    return summarize(await connectTrips(cast, CONNECTS, env)).p50;
  } catch (err) {
    progress(`delay: agent: ${err instanceof Error ? err.message.split("\n")[0] : err}`);
    return "n/a (agent failed)";
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

type PortForwardFigures = Pick<
  Column,
  "serialP50" | "burstFirstP95" | "burstLaterP95" | "burstP95" | "bulkMBps"
>;

/** Both port-forward measures, one process after the other (each holds its own warm legs). */
async function measureForwarding(
  cast: DelayCast,
  label: string,
  poolArgs: string[],
): Promise<PortForwardFigures> {
  const latencies = await measurePortForward(cast, label, poolArgs);
  return { ...latencies, bulkMBps: await measureBulk(cast, label, poolArgs) };
}

/**
 * Bulk uploads at once through a fresh port-forward whose pool is at its floor (as for a first
 * burst): with shared legs, those beyond the ready legs share one; without, they wait for dials.
 */
async function measureBulk(cast: DelayCast, label: string, poolArgs: string[]): Promise<number> {
  await using pf = await cast.startPortForward(poolArgs);
  await echoTrip(pf.port);
  await delay(SETTLE_MS);
  progress(`delay ${label}: ${BULK_WIDTH} uploads of ${BULK_BYTES >> 20} MiB at once, fresh pool`);
  return await bulkBurst(pf.port, BULK_WIDTH, BULK_BYTES);
}

/** Serial p50 and burst p95s through one port-forward started with `poolArgs`. */
async function measurePortForward(
  cast: DelayCast,
  label: string,
  poolArgs: string[],
): Promise<Omit<PortForwardFigures, "bulkMBps">> {
  await using pf = await cast.startPortForward(poolArgs);
  progress(`delay ${label}: warm-up`);
  await echoTrip(pf.port);
  await delay(SETTLE_MS);
  progress(`delay ${label}: ${SERIAL} serial connections`);
  const serial = summarize(await serialTrips(pf.port, SERIAL, GAP_MS));
  progress(`delay ${label}: ${BURST_ROUNDS} bursts of ${BURST_WIDTH}`);
  const [first, ...later] = await burstTrips(pf.port, BURST_WIDTH, BURST_ROUNDS, BURST_GAP_MS);
  return {
    serialP50: serial.p50,
    burstFirstP95: summarize(first).p95,
    burstLaterP95: later.length > 0 ? summarize(later.flat()).p95 : "n/a (one round)",
    burstP95: summarize([first, ...later].flat()).p95,
  };
}

async function measureColumn(
  cast: DelayCast,
  label: string,
  poolArgs: string[],
  withAgent: boolean,
): Promise<Column> {
  const forwarded = await measureForwarding(cast, label, poolArgs);
  progress(`delay ${label}: ${CONNECTS} relay-sender connect processes`);
  const connectP50 = summarize(await connectTrips(cast, CONNECTS)).p50;
  const agentP50 = withAgent ? await agentConnect(cast) : "n/a (no relay-sender agent)";
  return { label, ...forwarded, connectP50, agentP50 };
}

function absent(label: string, why: string): Column {
  const burst = { burstFirstP95: why, burstLaterP95: why, burstP95: why, bulkMBps: why };
  return { label, serialP50: why, ...burst, connectP50: why, agentP50: why };
}

export async function measureDelay(): Promise<DelayResult> {
  const features = await detectCliFeatures();
  progress(`delay: D = ${D} ms; pool flags: ${features.pool}; agent: ${features.agent}`);
  await using cast = await startDelayCast(D);
  const before = await measureColumn(
    cast,
    features.pool ? "before (--pool-max 0)" : "before (today's build, no pool flags)",
    features.pool ? ["--pool-max", "0"] : [],
    false,
  );
  const poolOnly = features.streams
    ? {
      ...absent("pool, no shared legs (--pool-streams 0)", "—"),
      ...await measureForwarding(cast, "pool only", ["--pool-streams", "0"]),
    }
    : absent("pool, no shared legs", "n/a (no --pool-streams)");
  const after = features.pool
    ? await measureColumn(cast, "after (pool on, defaults)", [], features.agent)
    : absent("after (pool on)", "n/a (no --pool-max)");
  progress(`delay: ${CONNECTS} x aztunnel --version (start-up alone)`);
  const startupP50 = summarize(await startupTrips(CONNECTS)).p50;
  return { delayMs: D, features, startupP50, before, poolOnly, after };
}

export function delayReport(r: DelayResult): string {
  const floor = 4 * r.delayMs;
  const ms = (m: Measured) => typeof m === "number" ? f1(m) : m;
  const x = (m: Measured) => typeof m === "number" ? `${(m / floor).toFixed(2)}×` : "";
  const goal = (m: Measured, target?: number) =>
    target === undefined ? "" : typeof m === "number" ? verdict(m / floor <= target) : "n/a";
  const columns = [r.before, r.poolOnly, r.after];
  const row = (name: string, pick: (c: Column) => Measured, target?: number) => [
    name,
    ...columns.flatMap((c) => [ms(pick(c)), x(pick(c))]),
    target === undefined ? "—" : `≤ ${target}×`,
    goal(pick(r.after), target),
  ];
  const bulk = (c: Column) => {
    const v = c.bulkMBps;
    const base = r.before.bulkMBps;
    if (typeof v !== "number") return [v, ""];
    return [f1(v), typeof base === "number" ? `${(v / base).toFixed(2)}× before` : ""];
  };
  return [
    `#### Delay model: D = ${r.delayMs} ms each way, floor 4·D = ${floor} ms`,
    "",
    `Serial: ${SERIAL} connections ${GAP_MS} ms apart; burst: ${BURST_ROUNDS} rounds of ` +
    `${BURST_WIDTH} at once, ${BURST_GAP_MS} ms apart (the first finds the pool at its floor, ` +
    `the later ones the size it learned); bulk: ${BULK_WIDTH} uploads of ${BULK_BYTES >> 20} MiB ` +
    `at once through a fresh port-forward, pool at its floor (MB/s in all, echoed back); connect: ${CONNECTS} processes, each including the CLI's ` +
    `start-up (\`aztunnel --version\` alone: p50 ${f1(r.startupP50)} ms).`,
    "",
    table(
      [
        "measure",
        ...columns.flatMap((c) => [`${c.label} ms`, "× floor"]),
        "target",
        "",
      ],
      [
        row("new connection, serial p50", (c) => c.serialP50, TARGETS.serial),
        row(`burst of ${BURST_WIDTH} p95, first burst`, (c) => c.burstFirstP95, TARGETS.burst),
        row(`burst of ${BURST_WIDTH} p95, later bursts`, (c) => c.burstLaterP95, TARGETS.burst),
        row(`burst of ${BURST_WIDTH} p95, all ${BURST_ROUNDS}`, (c) => c.burstP95, TARGETS.burst),
        row("`relay-sender connect` p50 (new process)", (c) => c.connectP50),
        row("`connect` through a running sender p50", (c) => c.agentP50, TARGETS.agentConnect),
        ["bulk uploads at once, MB/s", ...columns.flatMap(bulk), "—", ""],
      ],
    ),
  ].join("\n");
}
