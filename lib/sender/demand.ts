/**
 * How many warm legs a pool aims for: max(floor, min(cap, max(ceil(1.5 × peak concurrent opens in
 * the last 60 s), opens in progress + floor))). The headroom over the peak lets a repeat of the
 * last burst find legs ready while replacements are dialled; the opens in progress raise the
 * target at once during a burst, before any peak is remembered.
 */

export const DEMAND_WINDOW_MS = 60_000;
const HEADROOM = 1.5;
/** Peaks are kept per slot of this length, so memory stays bounded whatever the open rate. */
const SLOT_MS = 1_000;

/** Tunnel opens in progress, and their peak over a sliding window. */
export class DemandWindow {
  readonly #now: () => number;
  readonly #windowMs: number;
  /** [slot start, peak seen in the slot], oldest first. */
  #slots: [number, number][] = [];
  #current = 0;

  constructor(now: () => number = () => performance.now(), windowMs = DEMAND_WINDOW_MS) {
    this.#now = now;
    this.#windowMs = windowMs;
  }

  /** Opens in progress now. */
  get current(): number {
    return this.#current;
  }

  /** One open began; call the returned function once when it ends (success or not). */
  begin(): () => void {
    this.#current++;
    this.#record();
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.#current--;
    };
  }

  /** The most opens in progress at once within the window (the current count included). */
  peak(): number {
    this.#prune();
    return this.#slots.reduce((m, [, n]) => Math.max(m, n), this.#current);
  }

  /** The pool's target size for `floor` and `cap`. */
  target(floor: number, cap: number): number {
    const wanted = Math.max(Math.ceil(HEADROOM * this.peak()), this.#current + floor);
    return Math.max(floor, Math.min(cap, wanted));
  }

  #record(): void {
    const slot = Math.floor(this.#now() / SLOT_MS) * SLOT_MS;
    const last = this.#slots.at(-1);
    if (last && last[0] === slot) last[1] = Math.max(last[1], this.#current);
    else this.#slots.push([slot, this.#current]);
    this.#prune();
  }

  #prune(): void {
    const oldest = this.#now() - this.#windowMs;
    while (this.#slots.length > 0 && this.#slots[0][0] + SLOT_MS <= oldest) this.#slots.shift();
  }
}
