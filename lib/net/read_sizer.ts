/**
 * The size policy of a read buffer that lives as long as its connection. Thousands of tunnels may
 * sit idle, each with reads pending, so buffers start small; bulk transfers want big reads (fewer
 * syscalls and promise round trips), so they grow when the traffic asks for it:
 *
 * - a read that fills all the room it was given means more was waiting: the next buffer is twice
 *   as big, up to `max`;
 * - `shrinkAfter` reads in a row that each use at most a quarter of the buffer mean the traffic is
 *   interactive again: the next buffer is back to `initial`.
 *
 * The owner swaps its buffer between reads (never under a pending one), so the bytes a stream holds
 * while it waits are those of its latest size.
 */

/** Reads in a row at most a quarter full before a grown buffer goes back to its initial size. */
export const SHRINK_AFTER_READS = 16;

export class ReadSizer {
  readonly #initial: number;
  readonly #max: number;
  readonly #shrinkAfter: number;
  #size: number;
  #smallReads = 0;

  constructor(initial: number, max: number, shrinkAfter = SHRINK_AFTER_READS) {
    if (!(initial > 0 && initial <= max) || !Number.isInteger(initial) || !Number.isInteger(max)) {
      throw new RangeError(`read buffer sizes must be integers with 0 < initial <= max`);
    }
    this.#initial = initial;
    this.#max = max;
    this.#shrinkAfter = shrinkAfter;
    this.#size = initial;
  }

  /** The size the next read buffer should have. */
  get size(): number {
    return this.#size;
  }

  /** Records a read that returned `n` bytes into `room` free bytes; returns the next size. */
  record(n: number, room: number): number {
    if (n >= room) {
      this.#smallReads = 0;
      this.#size = Math.min(this.#max, this.#size * 2);
    } else if (this.#size > this.#initial && n <= this.#size / 4) {
      if (++this.#smallReads >= this.#shrinkAfter) {
        this.#smallReads = 0;
        this.#size = this.#initial;
      }
    } else {
      this.#smallReads = 0;
    }
    return this.#size;
  }
}
