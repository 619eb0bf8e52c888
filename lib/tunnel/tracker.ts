/**
 * In-flight tunnels of one service, for a graceful stop: stop accepting, give up at once on tunnels
 * still opening (relay dial, handshake, envelope, target dial: nothing flows yet, so nothing is
 * lost), let bridged tunnels end on their own for a while, then abort `cancelSignal` and wait for
 * them to wind down. A forced stop (second signal) skips the wait.
 */
import { formatDuration } from "../duration.ts";
import type { Logger } from "../observe/log.ts";

export interface DrainOptions {
  /** Logs the drain's progress (INFO); silent when absent. */
  logger?: Logger;
  /** Aborting it (a second SIGINT/SIGTERM) cancels every tunnel at once. */
  force?: AbortSignal;
}

export class TaskTracker {
  readonly #tasks = new Set<Promise<void>>();
  readonly #stop = new AbortController();
  readonly #stopSignal: AbortSignal;
  readonly #cancel = new AbortController();
  #bridged = 0;

  /** `stop`: the service's own stop request, which `stopSignal` follows as well. */
  constructor(stop?: AbortSignal) {
    this.#stopSignal = stop ? AbortSignal.any([stop, this.#stop.signal]) : this.#stop.signal;
  }

  /**
   * Aborted when the drain starts (or the constructor's `stop` aborts); tunnels pass it to
   * everything before their data phase.
   */
  get stopSignal(): AbortSignal {
    return this.#stopSignal;
  }

  /** Aborted when the drain deadline passes or is forced; tunnels pass it to their bridge. */
  get cancelSignal(): AbortSignal {
    return this.#cancel.signal;
  }

  get size(): number {
    return this.#tasks.size;
  }

  /** Tunnels in their data phase (the ones a drain waits for). */
  get bridged(): number {
    return this.#bridged;
  }

  /** Tracks `task` until it settles; its rejection is swallowed (tasks log their own failures). */
  track(task: Promise<unknown>): void {
    const t: Promise<void> = task.then(() => {}, () => {}).finally(() => this.#tasks.delete(t));
    this.#tasks.add(t);
  }

  /** A tunnel entered its data phase; call the returned function (once) when it has ended. */
  enterBridge(): () => void {
    this.#bridged++;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.#bridged--;
    };
  }

  /**
   * Aborts `stopSignal`, waits up to `timeoutMs` for every task (or until `force` aborts), then
   * cancels the rest and waits for them too.
   */
  async drain(timeoutMs: number, opts: DrainOptions = {}): Promise<void> {
    const log = opts.logger;
    const count = this.#bridged;
    this.#stop.abort(new DOMException("shutting down", "AbortError"));
    if (count > 0) {
      log?.info("draining tunnels", { count, timeout: formatDuration(Math.max(0, timeoutMs)) });
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onForce: (() => void) | undefined;
    const stopWaiting = new Promise<"timeout" | "forced">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), Math.max(0, timeoutMs));
      onForce = () => resolve("forced");
      if (opts.force?.aborted) onForce();
      else opts.force?.addEventListener("abort", onForce, { once: true });
    });
    let outcome: "done" | "timeout" | "forced" = "done";
    try {
      while (this.#tasks.size > 0 && outcome === "done") {
        const all = Promise.all([...this.#tasks]).then(() => "done" as const);
        outcome = await Promise.race([all, stopWaiting]);
      }
    } finally {
      clearTimeout(timer);
      if (onForce) opts.force?.removeEventListener("abort", onForce);
    }
    const left = this.#bridged;
    if (outcome === "forced") {
      log?.info(`second signal, closing ${left} tunnels now`, { count: left });
    } else if (outcome === "timeout" && left > 0) {
      log?.info(`drain timed out, closing ${left} tunnels`, { count: left });
    } else if (count > 0) {
      log?.info("drain complete");
    }
    if (outcome !== "done") {
      this.#cancel.abort(
        new DOMException(outcome === "forced" ? "forced stop" : "drain timeout", "AbortError"),
      );
    }
    while (this.#tasks.size > 0) await Promise.all([...this.#tasks]);
  }
}
