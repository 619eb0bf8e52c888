/**
 * In-flight tunnels of one service, for a graceful stop: stop accepting, let the tracked tasks end
 * on their own for a while, then abort `cancel` and wait for them to wind down.
 */
export class TaskTracker {
  readonly #tasks = new Set<Promise<void>>();
  readonly #cancel = new AbortController();

  /** Aborted when the drain deadline passes; tunnels pass it to their bridge. */
  get cancelSignal(): AbortSignal {
    return this.#cancel.signal;
  }

  get size(): number {
    return this.#tasks.size;
  }

  /** Tracks `task` until it settles; its rejection is swallowed (tasks log their own failures). */
  track(task: Promise<unknown>): void {
    const t: Promise<void> = task.then(() => {}, () => {}).finally(() => this.#tasks.delete(t));
    this.#tasks.add(t);
  }

  /** Waits up to `timeoutMs` for every task, then cancels the rest and waits for them too. */
  async drain(timeoutMs: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.#cancel.abort(new DOMException("drain timeout", "AbortError"));
        resolve();
      }, Math.max(0, timeoutMs));
    });
    try {
      while (this.#tasks.size > 0 && !this.#cancel.signal.aborted) {
        await Promise.race([Promise.all([...this.#tasks]), deadline]);
      }
    } finally {
      clearTimeout(timer);
    }
    while (this.#tasks.size > 0) await Promise.all([...this.#tasks]);
  }
}
