/**
 * Bytes of window growth still to hand out: each session has one, and the listener one for all its
 * shared legs, so a peer that grows every window it can still meets a fixed bound.
 */
export class WindowBudget {
  readonly limit: number;
  #left: number;

  constructor(limit: number) {
    this.limit = limit;
    this.#left = limit;
  }

  get left(): number {
    return this.#left;
  }

  /** Up to `bytes` (what is left, if less). */
  take(bytes: number): number {
    const granted = Math.max(0, Math.min(bytes, this.#left));
    this.#left -= granted;
    return granted;
  }

  give(bytes: number): void {
    this.#left = Math.min(this.limit, this.#left + bytes);
  }
}
