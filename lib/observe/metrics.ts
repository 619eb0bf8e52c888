/**
 * aztunnel's metrics: the Go tool's names, types, labels and buckets (reference §7), the target
 * cardinality guard, process metrics, and the relay-server's own gauges. One `Metrics` per process,
 * created by the command and passed down (never a module global, so tests stay independent).
 */
import process from "node:process";
import { type Counter, type Gauge, type Histogram, Registry } from "./prometheus.ts";

export type Role = "listener" | "sender";
export type ConnectionStatus = "success" | "error";
export type TokenProviderKind = "sas" | "entra";
export type TokenResult = "ok" | "error";
/** `connection_errors_total{reason}` values: failures before bridging. */
export type ErrorReason =
  | "dial_failed"
  | "dial_timeout"
  | "dns_not_found"
  | "dns_timeout"
  | "allowlist_rejected"
  | "envelope_error"
  | "relay_failed"
  | "auth_failed";

/** The label new targets get once `maxTargets` distinct ones were seen. */
export const OVERFLOW_TARGET = "__other__";
export const DEFAULT_MAX_TARGETS = 500;

export const CONNECTION_DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600] as const;
/** Where both latency histograms start: 1 ms, then Prometheus' default buckets (5 ms … 10 s). */
const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;
export const DIAL_DURATION_BUCKETS = [...LATENCY_BUCKETS, 30] as const;
export const TOKEN_FETCH_BUCKETS = [...LATENCY_BUCKETS, 15, 30, 60] as const;

export interface MetricsOptions {
  /** Distinct target labels kept before new ones become `__other__`; 0 = unlimited. */
  maxTargets?: number;
  /** Adds `process_*` and `deno_*` series (default true; tests turn it off for exact output). */
  processMetrics?: boolean;
  /** When set, exports `aztunnel_build_info{version} 1`. */
  version?: string;
  /** Monotonic milliseconds, for connection durations; tests inject a fake clock. */
  now?: () => number;
  /**
   * `up`: the per-tunnel series, the pool series and the listener gauges get a `name` label (the
   * entry's), on every series of those families. Off by default, so the single-tunnel commands'
   * output is unchanged.
   */
  entryNames?: boolean;
}

/**
 * Label values of the families that may carry `name`. Their label set is chosen at construction
 * (with or without `name`), so it is typed loosely; the registry checks the keys at every call.
 */
type Labels = Readonly<Record<string, string>>;

export interface ConnectionEnd {
  status: ConnectionStatus;
  /** Local socket → WebSocket. */
  bytesToRelay: number;
  /** WebSocket → local socket. */
  bytesFromRelay: number;
}

/** The sender's warm-leg pool hooks (lib/sender/warm_pool.ts); see `Metrics.pool()`. */
export interface PoolMetrics {
  /** Ready warm legs (said hello, not handed out) went up or down by `delta`. */
  legs(delta: number): void;
  /** A client got a warm leg. */
  hit(): void;
  /** A client found no warm leg ready (served by a fresh warm dial or a cold one). */
  miss(): void;
  /** Client bytes that went out ahead of the listener's answer on a tunnel it accepted. */
  earlyData(bytes: number): void;
  /** A tunnel rode a shared, multiplexed warm leg instead of a leg of its own (issue 10). */
  muxStream(): void;
}

/** The pool families, registered together on the first `Metrics.pool()` call. */
interface PoolFamilies {
  legs: Gauge<string>;
  hits: Counter<string>;
  misses: Counter<string>;
  early: Counter<string>;
}

export class Metrics {
  readonly registry = new Registry();
  readonly maxTargets: number;
  readonly #now: () => number;
  readonly #targets = new Set<string>();
  readonly #entryNames: boolean;

  readonly #connections: Counter<string>;
  readonly #errors: Counter<string>;
  readonly #bytes: Counter<string>;
  readonly #active: Gauge<string>;
  readonly #control: Gauge<string>;
  readonly #duration: Histogram<string>;
  readonly #dial: Histogram<string>;
  readonly #tokenSeconds: Histogram<"provider" | "result">;
  readonly #tokenTotal: Counter<"provider" | "result">;
  #poolFamilies: PoolFamilies | undefined;
  /** Registered on the first `muxStream()`, so pages stay as they were until multiplexing runs. */
  #muxStreams: Counter<string> | undefined;
  /** One set of hooks per entry name ("" without `entryNames`). */
  readonly #pools = new Map<string, PoolMetrics>();
  #warmHeld: Gauge<string> | undefined;

  /** Throws RangeError (`--metrics-max-targets must be >= 0, got N`) for a negative maxTargets. */
  constructor(opts: MetricsOptions = {}) {
    const max = opts.maxTargets ?? DEFAULT_MAX_TARGETS;
    if (!Number.isInteger(max) || max < 0) {
      throw new RangeError(`--metrics-max-targets must be >= 0, got ${max}`);
    }
    this.maxTargets = max;
    this.#now = opts.now ?? (() => performance.now());
    this.#entryNames = opts.entryNames ?? false;
    const r = this.registry;
    this.#connections = r.counter({
      name: "aztunnel_connections_total",
      help: "Bridged connections, counted when they end, by outcome.",
      labelNames: this.#labelNames(["role", "target", "status"]),
    });
    this.#errors = r.counter({
      name: "aztunnel_connection_errors_total",
      help: "Connection attempts that failed before bridging, by reason.",
      labelNames: this.#labelNames(["role", "reason"]),
    });
    this.#bytes = r.counter({
      name: "aztunnel_bytes_total",
      help:
        "Bytes carried by finished bridges (to_relay: local to relay; from_relay: relay to local).",
      labelNames: this.#labelNames(["role", "target", "direction"]),
    });
    this.#active = r.gauge({
      name: "aztunnel_active_connections",
      help: "Bridged connections currently open.",
      labelNames: this.#labelNames(["role", "target"]),
    });
    this.#control = r.gauge({
      name: "aztunnel_control_channel_connected",
      help: "1 while the listener control channel is connected, else 0.",
      labelNames: this.#labelNames([]),
    });
    this.#duration = r.histogram({
      name: "aztunnel_connection_duration_seconds",
      help: "Lifetime of finished bridged connections in seconds.",
      labelNames: this.#labelNames(["role", "target"]),
      buckets: CONNECTION_DURATION_BUCKETS,
    });
    this.#dial = r.histogram({
      name: "aztunnel_dial_duration_seconds",
      help:
        "Outbound dial time in seconds (listener: target; sender: relay including retries; arc: arc relay).",
      labelNames: this.#labelNames(["role"]),
      buckets: DIAL_DURATION_BUCKETS,
    });
    this.#tokenSeconds = r.histogram({
      name: "aztunnel_token_fetch_seconds",
      help: "Token provider call latency in seconds, cache hits included.",
      labelNames: ["provider", "result"],
      buckets: TOKEN_FETCH_BUCKETS,
    });
    this.#tokenTotal = r.counter({
      name: "aztunnel_token_fetch_total",
      help: "Token provider calls by outcome.",
      labelNames: ["provider", "result"],
    });
    if (opts.version !== undefined) {
      r.gauge({
        name: "aztunnel_build_info",
        help: "Always 1; the version label identifies the build.",
        labelNames: ["version"],
      }).set({ version: opts.version }, 1);
    }
    if (opts.processMetrics ?? true) registerProcessMetrics(r);
  }

  /**
   * The label for `target` under the cardinality guard: the first `maxTargets` distinct targets
   * keep their own label, later new ones get `__other__`, known ones always keep theirs.
   */
  targetLabel(target: string): string {
    if (this.maxTargets === 0 || this.#targets.has(target)) return target;
    if (this.#targets.size >= this.maxTargets) return OVERFLOW_TARGET;
    this.#targets.add(target);
    return target;
  }

  /**
   * Call when a bridge starts (the TunnelObserver adapter does, timing the bridge itself); pair
   * each call with one `bridgeEnded`. Returns the target label used (the target or `__other__`).
   */
  bridgeStarted(role: Role, target: string, entry?: string): string {
    const label = this.targetLabel(target);
    this.#active.add(this.#named({ role, target: label }, entry), 1);
    return label;
  }

  /**
   * Records a bridge that `bridgeStarted` counted. The guard maps a target to the same label every
   * time (known targets keep theirs, overflowed ones are never added), so no state is carried over.
   */
  bridgeEnded(
    role: Role,
    target: string,
    res: ConnectionEnd,
    seconds: number,
    entry?: string,
  ): void {
    const labels = this.#named({ role, target: this.targetLabel(target) }, entry);
    this.#active.add(labels, -1);
    this.#connections.inc({ ...labels, status: res.status });
    this.#duration.observe(labels, Math.max(0, seconds));
    this.#bytes.inc({ ...labels, direction: "to_relay" }, res.bytesToRelay);
    this.#bytes.inc({ ...labels, direction: "from_relay" }, res.bytesFromRelay);
  }

  connectionError(role: Role, reason: ErrorReason, entry?: string): void {
    this.#errors.inc(this.#named({ role, reason }, entry));
  }

  dialDuration(role: Role, seconds: number, entry?: string): void {
    this.#dial.observe(this.#named({ role }, entry), seconds);
  }

  /** `names` plus `name` when the families carry it (`entryNames`). */
  #labelNames(names: readonly string[]): readonly string[] {
    return this.#entryNames ? [...names, "name"] : names;
  }

  /**
   * `labels` plus `name` when the families carry it (`entryNames`). A missing entry becomes "",
   * which Prometheus reads as no label: a recording hook never throws in the middle of a tunnel.
   */
  #named(labels: Labels, entry: string | undefined): Labels {
    return this.#entryNames ? { ...labels, name: entry ?? "" } : labels;
  }

  /** Records one token-provider call (histogram and counter together, so their counts match). */
  tokenFetch(provider: TokenProviderKind, result: TokenResult, seconds: number): void {
    this.#tokenSeconds.observe({ provider, result }, seconds);
    this.#tokenTotal.inc({ provider, result });
  }

  /** Runs `fetch`, recording its latency and outcome; the result or error passes through. */
  async timeTokenFetch<T>(provider: TokenProviderKind, fetch: () => Promise<T>): Promise<T> {
    const started = this.#now();
    const seconds = () => Math.max(0, this.#now() - started) / 1000;
    try {
      const v = await fetch();
      this.tokenFetch(provider, "ok", seconds());
      return v;
    } catch (err) {
      this.tokenFetch(provider, "error", seconds());
      throw err;
    }
  }

  /**
   * The pool hooks of `entry` (with `entryNames`; else the process's one set). The families are
   * registered on first use: only a sender that pools exports them (and the listener's and
   * relay-server's pages keep their families). An entry's series start at 0 here; every pool of
   * the same entry (a restarted one, the old one still closing) shares them, so the gauge is moved
   * by deltas.
   */
  pool(entry?: string): PoolMetrics {
    const key = this.#entryNames ? entry ?? "" : "";
    const known = this.#pools.get(key);
    if (known) return known;
    const f = this.#poolFamilies ??= this.#registerPool();
    const labels = this.#named({}, entry);
    f.legs.add(labels, 0);
    f.hits.inc(labels, 0);
    f.misses.inc(labels, 0);
    f.early.inc(labels, 0);
    const hooks: PoolMetrics = {
      legs: (delta) => f.legs.add(labels, delta),
      hit: () => f.hits.inc(labels),
      miss: () => f.misses.inc(labels),
      earlyData: (bytes) => f.early.inc(labels, bytes),
      muxStream: () => {
        this.#muxStreams ??= this.registry.counter({
          name: "aztunnel_pool_mux_streams_total",
          help:
            "Tunnels carried on a shared, multiplexed warm leg (issue 10), not a leg of their own.",
          labelNames: this.#labelNames([]),
        });
        this.#muxStreams.inc(labels);
      },
    };
    this.#pools.set(key, hooks);
    return hooks;
  }

  #registerPool(): PoolFamilies {
    const r = this.registry;
    const labelNames = this.#labelNames([]);
    return {
      legs: r.gauge({
        name: "aztunnel_pool_legs",
        help: "Warm relay legs ready for a client (said hello, not yet used).",
        labelNames,
      }),
      hits: r.counter({
        name: "aztunnel_pool_hits_total",
        help: "Tunnels opened on a warm leg.",
        labelNames,
      }),
      misses: r.counter({
        name: "aztunnel_pool_misses_total",
        help: "Tunnels that found no warm leg ready (served by a fresh warm dial or a cold one).",
        labelNames,
      }),
      early: r.counter({
        name: "aztunnel_early_data_bytes_total",
        help: "Client bytes sent ahead of the listener's answer on accepted tunnels.",
        labelNames,
      }),
    };
  }

  /**
   * `up`: an entry the file no longer has has stopped; every series labelled with its name goes
   * (per-tunnel, pool, listener gauges), and its pool hooks are forgotten, so an entry added back
   * later starts from 0 (a counter reset, as after a restart).
   */
  forgetEntry(entry: string): void {
    if (!this.#entryNames) return;
    this.registry.dropSeries("name", entry);
    this.#pools.delete(entry);
  }

  /** `entry`: the `up` listener's name (with `entryNames`). */
  setControlConnected(up: boolean, entry?: string): void {
    this.#control.set(this.#named({}, entry), up ? 1 : 0);
  }

  /**
   * The listener's held warm legs (lib/listener/warm_hold.ts). Registered on first use, so only a
   * listener that holds warm legs exports it (it sets 0 at start).
   */
  setWarmLegsHeld(held: number, entry?: string): void {
    this.#warmHeld ??= this.registry.gauge({
      name: "aztunnel_warm_legs_held",
      help: "Warm relay legs the listener holds, waiting for their envelope.",
      labelNames: this.#labelNames([]),
    });
    this.#warmHeld.set(this.#named({}, entry), held);
  }

  render(): string {
    return this.registry.render();
  }
}

/**
 * Process metrics with the names Prometheus' process collector uses. CPU and memory need no
 * permission. Deno 2.9 allows reading /proc/self/* only under `--allow-all`, so the fd gauges are
 * tried when read access looks granted, and dropped for good after the first refusal.
 */
export function registerProcessMetrics(r: Registry): void {
  r.gauge({
    name: "process_resident_memory_bytes",
    help: "Resident memory size in bytes.",
    collect: () => Deno.memoryUsage().rss,
  });
  r.counter({
    name: "process_cpu_seconds_total",
    help: "Total user and system CPU time spent in seconds.",
    collect: () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1e6;
    },
  });
  const startSeconds = Math.round(performance.timeOrigin) / 1000;
  r.gauge({
    name: "process_start_time_seconds",
    help: "Start time of the process since unix epoch in seconds.",
    collect: () => startSeconds,
  });
  r.gauge({
    name: "deno_heap_used_bytes",
    help: "V8 heap in use, in bytes.",
    collect: () => Deno.memoryUsage().heapUsed,
  });
  r.gauge({
    name: "deno_heap_total_bytes",
    help: "V8 heap reserved, in bytes.",
    collect: () => Deno.memoryUsage().heapTotal,
  });
  r.gauge({
    name: "deno_external_memory_bytes",
    help: "Memory held by JavaScript objects outside the V8 heap (buffers), in bytes.",
    collect: () => Deno.memoryUsage().external,
  });
  const openFds = procReader("/proc/self/fd", (p) => {
    let n = 0;
    for (const _ of Deno.readDirSync(p)) n++;
    return n;
  });
  r.gauge({ name: "process_open_fds", help: "Number of open file descriptors.", collect: openFds });
  const maxFds = procReader("/proc/self/limits", (p) => {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(Deno.readTextFileSync(p));
    if (!m) return undefined;
    return m[1] === "unlimited" ? Infinity : Number(m[1]);
  });
  r.gauge({
    name: "process_max_fds",
    help: "Maximum number of open file descriptors.",
    collect: maxFds,
  });
}

/** A reader for a Linux /proc file that never prompts and gives up after one failure. */
function procReader(
  path: string,
  read: (path: string) => number | undefined,
): () => number | undefined {
  let usable = Deno.build.os === "linux";
  return () => {
    if (!usable) return undefined;
    try {
      // A "prompt" state would make Deno ask on a terminal in the middle of a scrape.
      if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") {
        usable = false;
        return undefined;
      }
      return read(path);
    } catch {
      usable = false;
      return undefined;
    }
  };
}

/** What the relay-server reports at each scrape (its `stats()`, listeners summed over hycos). */
export interface RelayServerCounts {
  /** Listener control channels registered now. */
  listeners: number;
  /** Senders waiting for a listener to accept. */
  pendingRendezvous: number;
  /** Sender/listener pairs bridged now. */
  bridgedConnections: number;
  /** Sender/listener pairs bridged since start. */
  bridgedTotal: number;
  bytesToListener: number;
  bytesToSender: number;
}

/**
 * The relay-server's own series, registered next to the client metrics. Read from `read()` at
 * every scrape, so the server needs no hooks and the values cannot drift from its own state.
 */
export function registerRelayServerMetrics(r: Registry, read: () => RelayServerCounts): void {
  r.gauge({
    name: "aztunnel_relay_listeners",
    help: "Listener control channels currently registered.",
    collect: () => read().listeners,
  });
  r.gauge({
    name: "aztunnel_relay_pending_rendezvous",
    help: "Senders waiting for a listener to accept.",
    collect: () => read().pendingRendezvous,
  });
  r.gauge({
    name: "aztunnel_relay_bridged_connections",
    help: "Sender/listener pairs bridged now.",
    collect: () => read().bridgedConnections,
  });
  r.counter({
    name: "aztunnel_relay_bridged_connections_total",
    help: "Sender/listener pairs bridged.",
    collect: () => read().bridgedTotal,
  });
  r.counter<"direction">({
    name: "aztunnel_relay_bytes_total",
    help: "Bytes forwarded between senders and listeners.",
    labelNames: ["direction"],
    collect: () => {
      const c = read();
      return [
        [{ direction: "to_listener" }, c.bytesToListener],
        [{ direction: "to_sender" }, c.bytesToSender],
      ];
    },
  });
}
