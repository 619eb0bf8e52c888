/**
 * The global `--metrics-addr` / `--metrics-max-targets` flags (reference §1.2) and what every command
 * does with them: one `Metrics`, the ops server (`/metrics`, `/healthz`, `/readyz`) and the
 * readiness rules of each command kind.
 */
import { Option } from "@commander-js/extra-typings";
import { AztunnelError, errorMessage, UsageError } from "../lib/errors.ts";
import { getLogger } from "../lib/observe/log.ts";
import { DEFAULT_MAX_TARGETS, Metrics, type RelayServerCounts } from "../lib/observe/metrics.ts";
import {
  type OpsServer,
  parseListenAddr,
  type Readiness,
  startOpsServer,
} from "../lib/observe/ops_server.ts";
import { timedTokenProvider, type TokenProvider } from "../lib/relay/token.ts";
import type { RelayStats } from "../lib/server/mod.ts";
import { metricsObserver } from "../lib/tunnel/metrics_observer.ts";
import { combineObservers, type TunnelObserver } from "../lib/tunnel/observer.ts";
import { VERSION } from "../lib/version.ts";
import { SenderReadiness } from "./readiness.ts";
import { shutdownSignal } from "./shutdown.ts";

export const metricsAddrOption = () =>
  new Option(
    "--metrics-addr <addr>",
    "serve /metrics, /healthz and /readyz on host:port (port 0 picks a free one)",
  ).env("AZTUNNEL_METRICS_ADDR");
export const metricsMaxTargetsOption = () =>
  new Option(
    "--metrics-max-targets <n>",
    "distinct target labels before new targets are counted as __other__ (0 = unlimited)",
  ).default(String(DEFAULT_MAX_TARGETS));

export interface MetricsFlags {
  metricsAddr?: string;
  metricsMaxTargets?: string;
}

export interface MetricsConfig {
  addr: string;
  maxTargets: number;
}

/**
 * The metrics settings, or undefined when `--metrics-addr` (or AZTUNNEL_METRICS_ADDR) is empty.
 * A malformed address is a usage error, and so is a negative `--metrics-max-targets`, metrics on or
 * off (issue 11: values that cannot work are errors).
 */
export function parseMetricsFlags(flags: MetricsFlags): MetricsConfig | undefined {
  const text = (flags.metricsMaxTargets ?? String(DEFAULT_MAX_TARGETS)).trim();
  if (!/^[+-]?\d+$/.test(text)) {
    throw new UsageError(`invalid --metrics-max-targets "${text}": expected an integer`);
  }
  // A value that cannot work is an error even while metrics are off (Go ignores it then).
  const maxTargets = Number(text);
  if (maxTargets < 0) throw new UsageError(`--metrics-max-targets must be >= 0, got ${maxTargets}`);
  const addr = flags.metricsAddr?.trim() ?? "";
  if (addr === "") return undefined;
  // Checked here, not at listen time: a typo is a usage error (exit 2), a busy port a failure (1).
  if (!parseListenAddr(addr)) {
    throw new UsageError(`invalid --metrics-addr "${flags.metricsAddr}": expected host:port`);
  }
  return { addr, maxTargets };
}

/** What a command's body gets from `runWithOps`. */
export interface Ops {
  /** Aborted on the first SIGINT/SIGTERM. */
  readonly signal: AbortSignal;
  /** Aborted on the second: stop draining, cut open tunnels now. */
  readonly force: AbortSignal;
  /** Undefined when metrics are off. */
  readonly metrics?: Metrics;
  /** The ops server's bound `host:port` (port resolved); undefined when metrics are off. */
  readonly opsAddr?: string;
  /**
   * The metrics hooks plus the command's own (readiness); pass it to the tunnel code. With
   * `entryNames` it has no metrics hooks: those come from `entryObserver`.
   */
  readonly observer?: TunnelObserver;
  /**
   * `up`: the metrics hooks for one entry, its series labelled `name` (with `entryNames`), plus
   * the command's own. Absent in tests that build an Ops by hand.
   */
  entryObserver?(name: string): TunnelObserver | undefined;
  /** `tokens` with every call recorded in `aztunnel_token_fetch_*` when metrics are on. */
  tokens(tokens: TokenProvider): TokenProvider;
}

export interface OpsSetup {
  /** Answers `/readyz`; default always ready. */
  readiness?: () => Readiness;
  /** Hooks the command needs besides the metrics (readiness bookkeeping). */
  observer?: TunnelObserver;
  /** `up`: per-tunnel series and listener gauges carry the entry's `name` (Metrics.entryNames). */
  entryNames?: boolean;
}

/** Something commander's `optsWithGlobals()` can be read from. */
export interface GlobalsReader {
  optsWithGlobals(): object;
}

/**
 * Runs a command body with SIGINT/SIGTERM handling and, when configured, the ops server. The server
 * starts first, so a bind failure (`aztunnel: error: metrics server listen …`, exit 1) ends the command before any
 * tunnel work; it closes as soon as a stop is requested (the drain has begun) and when the body ends.
 */
export async function runWithOps(
  cmd: GlobalsReader,
  setup: OpsSetup,
  body: (ops: Ops) => Promise<void>,
): Promise<void> {
  const config = parseMetricsFlags(cmd.optsWithGlobals() as MetricsFlags);
  const named = setup.entryNames === true;
  const metrics = config
    ? new Metrics({ maxTargets: config.maxTargets, version: VERSION, entryNames: named })
    : undefined;
  const server = config && metrics ? listen(config.addr, metrics, setup.readiness) : undefined;
  const stop = shutdownSignal();
  const close = () => server?.close() ?? Promise.resolve();
  const onStop = () => void close();
  stop.signal.addEventListener("abort", onStop, { once: true });
  try {
    await body({
      signal: stop.signal,
      force: stop.force,
      metrics,
      opsAddr: server?.addr,
      // Unnamed hooks would break the `name` label set of the families under `up`.
      observer: combineObservers(
        metrics && !named ? metricsObserver(metrics) : undefined,
        setup.observer,
      ),
      entryObserver: (name) =>
        combineObservers(metrics && metricsObserver(metrics, name), setup.observer),
      tokens: (tokens) => (metrics ? timedTokenProvider(tokens, metrics) : tokens),
    });
  } finally {
    stop.signal.removeEventListener("abort", onStop);
    stop.dispose();
    await close();
  }
}

/** A bind failure is reported once, by the CLI's `aztunnel: error:` line (exit 1), not also logged. */
function listen(addr: string, metrics: Metrics, readiness?: () => Readiness): OpsServer {
  try {
    return startOpsServer({ addr, metrics, readiness, logger: getLogger() });
  } catch (err) {
    throw new AztunnelError("metrics_failed", errorMessage(err), { cause: err });
  }
}

/** `runWithOps` with sender readiness: the body calls `ready.bound()` once its local side is up. */
export function runSenderWithOps(
  cmd: GlobalsReader,
  body: (ops: Ops, ready: SenderReadiness) => Promise<void>,
): Promise<void> {
  const ready = new SenderReadiness();
  return runWithOps(
    cmd,
    { readiness: () => ready.check(), observer: ready.observer },
    (ops) => body(ops, ready),
  );
}

/** The relay-server's `stats()` as the numbers `registerRelayServerMetrics` reads. */
export function relayServerCounts(stats: RelayStats): RelayServerCounts {
  return {
    listeners: Object.values(stats.listeners).reduce((sum, n) => sum + n, 0),
    pendingRendezvous: stats.pendingRendezvous,
    bridgedConnections: stats.bridgedConnections,
    bridgedTotal: stats.bridgedTotal,
    bytesToListener: stats.bytesSenderToListener,
    bytesToSender: stats.bytesListenerToSender,
  };
}
