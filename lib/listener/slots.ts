/**
 * A counted limit with FIFO waiters: the listener's `--max-connections` (0 = unlimited) and its
 * `--max-warm-legs`. A cold accept takes a slot or is refused at once; a warm leg whose envelope has
 * arrived was accepted long ago, so it may wait a while for one instead. The limit can change while
 * slots are held (`up`'s SIGHUP): holders keep theirs, and only takers see the new limit.
 */
export class Slots {
  #limit: number;
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

  /** Takers waiting in `acquire`. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** 0: unlimited. */
  get limit(): number {
    return this.#limit;
  }

  /**
   * Changes the limit in place. Below `inUse`, nothing is taken back: new takers wait or are
   * refused until enough slots are released. Raised, the waiters get the slots it frees.
   */
  setLimit(limit: number): void {
    if (!Number.isInteger(limit) || limit < 0) {
      throw new RangeError(`slot limit must be an integer >= 0, got ${limit}`);
    }
    this.#limit = limit;
    while (this.#waiters.length > 0 && this.#free()) this.#waiters[0]();
  }

  /** Takes a slot when one is free (and nobody waits ahead); false when the limit is reached. */
  tryAcquire(): boolean {
    if (!this.#free() || this.#waiters.length > 0) return false;
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

  /** Gives back a slot that acquire or tryAcquire took; the first waiter gets it if it is free. */
  release(): void {
    this.#inUse--;
    this.#onChange?.(this.#inUse);
    // After a lowered limit, a release may still leave every slot taken.
    if (this.#free()) this.#waiters[0]?.();
  }

  #free(): boolean {
    return this.#limit === 0 || this.#inUse < this.#limit;
  }

  #take(): void {
    this.#inUse++;
    this.#onChange?.(this.#inUse);
  }
}
