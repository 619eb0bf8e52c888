/**
 * A small Prometheus registry and text exposition writer (format 0.0.4). Written here instead of
 * using npm prom-client, which is not a declared dependency and, under Deno without
 * `--allow-all`, reports `process_open_fds 0` and drops resident memory (Deno 2.9 lets a program
 * read /proc/self only with --allow-all). Output is deterministic: families sorted by name, label
 * names sorted, series sorted by label values (as client_golang does), so tests can compare bytes.
 */

export type MetricType = "counter" | "gauge" | "histogram";

/** Label values keyed by label name; exactly the names the metric declared. */
export type LabelValues<L extends string> = Readonly<Record<L, string>>;

/** What a callback metric reports at render time: one unlabelled value, series, or nothing. */
export type Collected<L extends string> =
  | number
  | undefined
  | Iterable<readonly [LabelValues<L>, number]>;

export interface MetricOptions<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
}

export interface CallbackOptions<L extends string> extends MetricOptions<L> {
  /** Read at every render; replaces stored values (e.g. RSS, listeners registered). */
  collect?: () => Collected<L>;
}

export interface HistogramOptions<L extends string> extends MetricOptions<L> {
  /** Upper bounds, strictly increasing; `+Inf` is implicit. */
  buckets: readonly number[];
}

export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Formats a sample value the way Prometheus parses it back (`+Inf`, `-Inf`, `NaN`). */
export function formatValue(v: number): string {
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  if (Number.isNaN(v)) return "NaN";
  return String(v);
}

export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

export function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  /** Appends sample lines (without HELP/TYPE); returns false when there is no series. */
  writeSamples(out: string[]): boolean;
  /** Deletes the stored series whose `label` is `value` (none when the label is not declared). */
  drop(label: string, value: string): void;
}

/** Validated, sorted label bookkeeping shared by every metric kind. */
class LabelSet<L extends string> {
  readonly names: readonly L[];
  readonly #sorted: readonly L[];

  constructor(metric: string, names: readonly L[], reserved: readonly string[] = []) {
    for (const n of names) {
      if (!LABEL_NAME.test(n) || n.startsWith("__") || reserved.includes(n)) {
        throw new Error(`metric ${metric}: invalid label name "${n}"`);
      }
    }
    if (new Set(names).size !== names.length) {
      throw new Error(`metric ${metric}: duplicate label name`);
    }
    this.names = names;
    this.#sorted = [...names].sort();
  }

  /** A stable key for a series; throws when labels do not match the declared names. */
  key(labels: LabelValues<L> | undefined): string {
    const given = labels ?? ({} as LabelValues<L>);
    const keys = Object.keys(given);
    if (
      keys.length !== this.names.length || !this.names.every((n) => typeof given[n] === "string")
    ) {
      throw new Error(
        `labels {${keys.join(",")}} do not match declared {${this.names.join(",")}}`,
      );
    }
    return JSON.stringify(this.#sorted.map((n) => given[n]));
  }

  /** Whether series `key` has `label` set to `value`; false when `label` is not declared. */
  matches(key: string, label: string, value: string): boolean {
    const i = this.#sorted.indexOf(label as L);
    return i >= 0 && (JSON.parse(key) as string[])[i] === value;
  }

  /** `{a="x",b="y"}` (names sorted), with optional extra pairs appended (histogram `le`). */
  format(key: string, extra = ""): string {
    const values = JSON.parse(key) as string[];
    const pairs = this.#sorted.map((n, i) => `${n}="${escapeLabelValue(values[i])}"`);
    if (extra) pairs.push(extra);
    return pairs.length ? `{${pairs.join(",")}}` : "";
  }
}

function sortedEntries<V>(m: Map<string, V>): [string, V][] {
  return [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Counter or gauge: one number per series, optionally produced by a callback. */
abstract class Scalar<L extends string> implements Family {
  abstract readonly type: MetricType;
  protected readonly values = new Map<string, number>();
  readonly #labels: LabelSet<L>;
  readonly #collect?: () => Collected<L>;

  constructor(readonly name: string, readonly help: string, opts: CallbackOptions<L>) {
    this.#labels = new LabelSet(name, opts.labelNames ?? []);
    this.#collect = opts.collect;
    // An unlabelled metric exists from the start (e.g. control_channel_connected 0).
    if (!this.#labels.names.length && !this.#collect) {
      this.values.set(this.#labels.key(undefined), 0);
    }
  }

  protected key(labels: LabelValues<L> | undefined): string {
    return this.#labels.key(labels);
  }

  /** The current value of one series (0 when never observed). */
  get(labels?: LabelValues<L>): number {
    return this.values.get(this.key(labels)) ?? 0;
  }

  drop(label: string, value: string): void {
    for (const key of [...this.values.keys()]) {
      if (this.#labels.matches(key, label, value)) this.values.delete(key);
    }
  }

  writeSamples(out: string[]): boolean {
    let series = this.values;
    if (this.#collect) {
      series = new Map();
      const got = this.#collect();
      if (typeof got === "number") series.set(this.key(undefined), got);
      else if (got !== undefined) {
        for (const [labels, v] of got) series.set(this.key(labels), v);
      }
    }
    for (const [key, v] of sortedEntries(series)) {
      out.push(`${this.name}${this.#labels.format(key)} ${formatValue(v)}`);
    }
    return series.size > 0;
  }
}

export class Counter<L extends string = never> extends Scalar<L> {
  readonly type = "counter";

  /** Adds `by` (≥ 0) to the series. */
  inc(labels?: LabelValues<L>, by = 1): void {
    if (!(by >= 0)) throw new RangeError(`counter ${this.name}: cannot add ${by}`);
    const key = this.key(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }
}

export class Gauge<L extends string = never> extends Scalar<L> {
  readonly type = "gauge";

  set(labels: LabelValues<L> | undefined, v: number): void {
    this.values.set(this.key(labels), v);
  }

  /** Adds `by` (may be negative) to the series. */
  add(labels: LabelValues<L> | undefined, by: number): void {
    const key = this.key(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }
}

interface HistogramSeries {
  /** Non-cumulative count per bucket; the last slot is +Inf. */
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram<L extends string = never> implements Family {
  readonly type = "histogram";
  readonly buckets: readonly number[];
  readonly #series = new Map<string, HistogramSeries>();
  readonly #labels: LabelSet<L>;

  constructor(readonly name: string, readonly help: string, opts: HistogramOptions<L>) {
    this.#labels = new LabelSet(name, opts.labelNames ?? [], ["le"]);
    const b = opts.buckets;
    if (!b.length || b.some((v, i) => !Number.isFinite(v) || (i > 0 && v <= b[i - 1]))) {
      throw new Error(`histogram ${name}: buckets must be finite and strictly increasing`);
    }
    this.buckets = [...b];
    if (!this.#labels.names.length) this.#series.set(this.#labels.key(undefined), this.#empty());
  }

  #empty(): HistogramSeries {
    return { counts: new Array(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
  }

  observe(labels: LabelValues<L> | undefined, v: number): void {
    const key = this.#labels.key(labels);
    let s = this.#series.get(key);
    if (!s) this.#series.set(key, s = this.#empty());
    let i = this.buckets.findIndex((bound) => v <= bound);
    if (i < 0) i = this.buckets.length;
    s.counts[i]++;
    s.sum += v;
    s.count++;
  }

  /** `{count, sum}` of one series (zeros when never observed). */
  get(labels?: LabelValues<L>): { count: number; sum: number } {
    const s = this.#series.get(this.#labels.key(labels));
    return { count: s?.count ?? 0, sum: s?.sum ?? 0 };
  }

  drop(label: string, value: string): void {
    for (const key of [...this.#series.keys()]) {
      if (this.#labels.matches(key, label, value)) this.#series.delete(key);
    }
  }

  writeSamples(out: string[]): boolean {
    for (const [key, s] of sortedEntries(this.#series)) {
      let cumulative = 0;
      this.buckets.forEach((bound, i) => {
        cumulative += s.counts[i];
        const le = `le="${formatValue(bound)}"`;
        out.push(`${this.name}_bucket${this.#labels.format(key, le)} ${cumulative}`);
      });
      out.push(`${this.name}_bucket${this.#labels.format(key, 'le="+Inf"')} ${s.count}`);
      out.push(`${this.name}_sum${this.#labels.format(key)} ${formatValue(s.sum)}`);
      out.push(`${this.name}_count${this.#labels.format(key)} ${s.count}`);
    }
    return this.#series.size > 0;
  }
}

/** A set of metric families rendered together on one `/metrics` page. */
export class Registry {
  readonly #families = new Map<string, Family>();

  #add<F extends Family>(f: F): F {
    if (!METRIC_NAME.test(f.name)) throw new Error(`invalid metric name "${f.name}"`);
    if (f.type === "counter" && !f.name.endsWith("_total")) {
      throw new Error(`counter ${f.name} must end in _total`);
    }
    if (this.#families.has(f.name)) throw new Error(`metric ${f.name} already registered`);
    this.#families.set(f.name, f);
    return f;
  }

  counter<L extends string = never>(opts: CallbackOptions<L>): Counter<L> {
    return this.#add(new Counter<L>(opts.name, opts.help, opts));
  }

  gauge<L extends string = never>(opts: CallbackOptions<L>): Gauge<L> {
    return this.#add(new Gauge<L>(opts.name, opts.help, opts));
  }

  histogram<L extends string = never>(opts: HistogramOptions<L>): Histogram<L> {
    return this.#add(new Histogram<L>(opts.name, opts.help, opts));
  }

  /**
   * Deletes every stored series, in any family, whose `label` is `value` (callback families are
   * left alone: they report afresh at each render). A family left with no series is not rendered.
   */
  dropSeries(label: string, value: string): void {
    for (const f of this.#families.values()) f.drop(label, value);
  }

  /** The exposition text; families without any series are left out, as client_golang does. */
  render(): string {
    const out: string[] = [];
    for (const [, f] of sortedEntries(this.#families)) {
      const samples: string[] = [];
      if (!f.writeSamples(samples)) continue;
      out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`, ...samples);
    }
    return out.length ? out.join("\n") + "\n" : "";
  }
}
