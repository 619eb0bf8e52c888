/**
 * A counted limit with FIFO waiters: the listener's `--max-connections` (0 = unlimited) and its
 * `--max-warm-legs`. A cold accept takes a slot or is refused at once; a warm leg whose envelope has
 * arrived was accepted long ago, so it may wait a while for one instead.
 */
export class Slots {
  readonly #limit: number;
  readonly #onChange?: (inUse: number) => void;
  #inUse = 0;
  readonly #waiters: (() => void)[] = [];

  /** `limit` 0: unlimited. `onChange` hears every new count (a gauge). */
  constructor(limit: number, onChange?: (inUse: number) => void) {
    this.#limit = limit;
    this.#onChange = onChange;
  }

  get inUse(): number {
    return this.#inUse;
  }

  /** Takes a slot when one is free (and nobody waits ahead); false when the limit is reached. */
  tryAcquire(): boolean {
    if (this.#limit > 0 && (this.#inUse >= this.#limit || this.#waiters.length > 0)) return false;
    this.#take();
    return true;
  }

  /** Takes a slot, waiting up to `timeoutMs` for one; false at the deadline or when `signal` aborts. */
  acquire(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.tryAcquire()) return Promise.resolve(true);
    if (signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const settle = (ok: boolean) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        const i = this.#waiters.indexOf(grant);
        if (i >= 0) this.#waiters.splice(i, 1);
        resolve(ok);
      };
      const grant = () => {
        this.#take();
        settle(true);
      };
      const onAbort = () => settle(false);
      const timer = setTimeout(onAbort, Math.max(0, timeoutMs));
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(grant);
    });
  }

  /** Gives back a slot that acquire or tryAcquire took; the first waiter gets it. */
  release(): void {
    this.#inUse--;
    this.#onChange?.(this.#inUse);
    this.#waiters[0]?.();
  }

  #take(): void {
    this.#inUse++;
    this.#onChange?.(this.#inUse);
  }
}
