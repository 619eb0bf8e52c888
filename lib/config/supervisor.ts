/**
 * Runs the entries of the `up` file side by side and keeps them as the file says: start-up (one
 * failure ends everything unless `keepGoing`), SIGHUP reloads (planReload), readiness, and a stop
 * that waits for every entry. What an entry is and how it starts is the caller's `launch`.
 */
import { AztunnelError, errorMessage } from "../errors.ts";
import type { Logger } from "../observe/log.ts";
import type { Readiness } from "../observe/ops_server.ts";
import { planReload } from "./reload_plan.ts";
import type { Entry, EntryKind } from "./types.ts";

/** A started entry. */
export interface RunningEntry {
  /** Settles once the entry has stopped; rejects when it failed while running. */
  readonly done: Promise<void>;
  check(): Readiness;
  /** Takes `next` in place; false when it cannot (the entry is restarted instead). */
  update?(next: Entry): boolean;
}

/** Starts `entry`; resolves once it is up (bound), rejects when it cannot start. */
export type Launch = (entry: Entry, signal: AbortSignal) => Promise<RunningEntry>;

export interface SupervisorOptions {
  launch: Launch;
  /** Failed entries are reported (readiness, logs) instead of ending the process. */
  keepGoing: boolean;
  logger: Logger;
  /** The process stop: every entry stops when it aborts. */
  signal: AbortSignal;
  /**
   * A reload removed the entry `name` and nothing of it runs any more (a removed entry once it has
   * stopped, a failed one at once): what is kept per entry, such as its metric series, can go.
   * Not called for a restart (same name) nor at the process stop.
   */
  onGone?(name: string): void;
}

interface Slot {
  entry: Entry;
  stop: AbortController;
  handle: RunningEntry;
}

export class Supervisor {
  readonly #opts: SupervisorOptions;
  readonly #running = new Map<string, Slot>();
  readonly #failed = new Map<string, { kind: EntryKind; why: string }>();
  readonly #ending = new Set<Promise<void>>();
  /** The names in the file last started or reloaded. */
  #wanted = new Set<string>();
  #fatal: ((err: Error) => void) | undefined;
  readonly #fatalError: Promise<never>;

  constructor(opts: SupervisorOptions) {
    this.#opts = opts;
    this.#fatalError = new Promise<never>((_, reject) => this.#fatal = reject);
    this.#fatalError.catch(() => {});
  }

  /** Starts every entry; throws (after stopping the others) when one fails and not keepGoing. */
  async start(entries: readonly Entry[]): Promise<void> {
    this.#wanted = new Set(entries.map((e) => e.name));
    await Promise.all(entries.map((e) => this.#launch(e)));
    if (this.#failed.size > 0 && !this.#opts.keepGoing) {
      const why = [...this.#failed].map(([name, f]) => `${f.kind} "${name}": ${f.why}`);
      await this.#stopAll();
      throw new AztunnelError("entry_failed", why.join("; "));
    }
  }

  /** Waits for the process stop and every entry's end; rejects when an entry failed (not keepGoing). */
  async run(): Promise<void> {
    const stopped = new Promise<void>((resolve) => {
      if (this.#opts.signal.aborted) resolve();
      else this.#opts.signal.addEventListener("abort", () => resolve(), { once: true });
    });
    try {
      await Promise.race([stopped, this.#fatalError]);
    } finally {
      await this.#stopAll();
    }
  }

  /** Applies a new file's entries; never throws (a failed start is logged and reported). */
  async reload(entries: readonly Entry[]): Promise<void> {
    const running = new Map([...this.#running].map(([n, s]) => [n, s.entry]));
    const plan = planReload(running, entries);
    const restart = [...plan.restart];
    for (const e of plan.update) {
      const slot = this.#running.get(e.name)!;
      if (slot.handle.update?.(e)) slot.entry = e;
      else restart.push(e);
    }
    this.#wanted = new Set(entries.map((e) => e.name));
    for (const name of [...plan.stop, ...restart.map((e) => e.name)]) this.#stop(name);
    for (const name of [...this.#failed.keys()]) {
      if (this.#wanted.has(name)) continue;
      this.#failed.delete(name);
      this.#opts.onGone?.(name);
    }
    await Promise.all([...plan.start, ...restart].map((e) => this.#launch(e)));
    this.#opts.logger.info("config reloaded", {
      started: plan.start.map((e) => e.name).join(","),
      stopped: plan.stop.join(","),
      restarted: restart.map((e) => e.name).join(","),
      updated: plan.update.filter((e) => !restart.includes(e)).map((e) => e.name).join(","),
    });
  }

  /** Not ready while any entry failed or is not ready itself; the reason names the entries. */
  readiness(): Readiness {
    if (this.#failed.size > 0) {
      const why = [...this.#failed].map(([name, f]) => `${name} (${f.why})`);
      return { ready: false, reason: `failed entries: ${why.join(", ")}` };
    }
    for (const [name, slot] of this.#running) {
      const r = slot.handle.check();
      if (!r.ready) return { ready: false, reason: `${name}: ${r.reason ?? "not ready"}` };
    }
    return { ready: true };
  }

  /** Every known entry with 1 when it is ready, 0 when not (or failed): the `name` gauge. */
  *states(): Iterable<readonly [{ name: string; kind: string }, number]> {
    for (const [name, slot] of this.#running) {
      yield [{ name, kind: slot.entry.kind }, slot.handle.check().ready ? 1 : 0];
    }
    for (const [name, f] of this.#failed) yield [{ name, kind: f.kind }, 0];
  }

  async #launch(entry: Entry): Promise<void> {
    const stop = new AbortController();
    const onStop = () => stop.abort(this.#opts.signal.reason);
    if (this.#opts.signal.aborted) return;
    this.#opts.signal.addEventListener("abort", onStop, { once: true });
    stop.signal.addEventListener(
      "abort",
      () => this.#opts.signal.removeEventListener("abort", onStop),
      { once: true },
    );
    let handle: RunningEntry;
    try {
      handle = await this.#opts.launch(entry, stop.signal);
    } catch (err) {
      stop.abort();
      this.#fail(entry, `failed to start: ${errorMessage(err)}`, err);
      return;
    }
    this.#failed.delete(entry.name);
    const slot = { entry, stop, handle };
    this.#running.set(entry.name, slot);
    handle.done.then(
      () => this.#ended(slot),
      (err) => this.#ended(slot, err),
    );
  }

  /** An entry's run ended: expected when it was asked to stop, else a failure. */
  #ended(slot: Slot, err?: unknown): void {
    const current = this.#running.get(slot.entry.name) === slot;
    if (current) this.#running.delete(slot.entry.name);
    const asked = slot.stop.signal.aborted;
    // Unlinks the entry from the process stop.
    slot.stop.abort();
    if (asked || !current) return;
    this.#fail(slot.entry, err ? errorMessage(err) : "stopped by itself", err);
    if (!this.#opts.keepGoing) {
      this.#fatal?.(
        new AztunnelError("entry_failed", `${slot.entry.kind} "${slot.entry.name}" failed`, {
          cause: err,
        }),
      );
    }
  }

  #fail(entry: Entry, why: string, err: unknown): void {
    this.#failed.set(entry.name, { kind: entry.kind, why });
    this.#opts.logger.error("entry failed", {
      entry: entry.name,
      kind: entry.kind,
      error: err === undefined ? why : errorMessage(err),
    });
  }

  #stop(name: string): void {
    const slot = this.#running.get(name);
    if (!slot) return;
    this.#running.delete(name);
    slot.stop.abort();
    const ending = slot.handle.done.catch(() => {}).finally(() => {
      this.#ending.delete(ending);
      // Checked when it has ended: the file may have brought the name back meanwhile.
      if (this.#wanted.has(name)) return;
      this.#opts.logger.info("entry removed", { entry: name, kind: slot.entry.kind });
      this.#opts.onGone?.(name);
    });
    this.#ending.add(ending);
  }

  async #stopAll(): Promise<void> {
    for (const name of [...this.#running.keys()]) this.#stop(name);
    await Promise.all([...this.#ending]);
  }
}
