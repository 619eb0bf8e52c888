/** A PoolMetrics that tests read and wait on (no sleeps): the warm pool's state as it reports it. */
import { deadline } from "../../lib/async.ts";
import type { PoolMetrics } from "../../lib/observe/metrics.ts";

export class PoolRecorder implements PoolMetrics {
  /** Ready legs now, and the most there ever were. */
  ready = 0;
  maxReady = 0;
  hits = 0;
  misses = 0;
  earlyBytes = 0;
  muxStreams = 0;
  readonly #waiters = new Set<() => void>();

  legs(delta: number): void {
    this.ready += delta;
    this.maxReady = Math.max(this.maxReady, this.ready);
    this.#changed();
  }
  hit(): void {
    this.hits++;
    this.#changed();
  }
  miss(): void {
    this.misses++;
    this.#changed();
  }
  earlyData(bytes: number): void {
    this.earlyBytes += bytes;
    this.#changed();
  }
  muxStream(): void {
    this.muxStreams++;
    this.#changed();
  }

  /** Resolves once `pred` holds; fails (rather than hangs) after `timeoutMs`. */
  until(
    pred: (r: PoolRecorder) => boolean,
    what = "pool state",
    timeoutMs = 20_000,
  ): Promise<void> {
    const reached = new Promise<void>((resolve) => {
      const check = () => {
        if (!pred(this)) return;
        this.#waiters.delete(check);
        resolve();
      };
      this.#waiters.add(check);
      check();
    });
    return deadline(reached, timeoutMs, {
      onTimeout: () => new Error(`${what} not reached: ${JSON.stringify(this.snapshot())}`),
    });
  }

  snapshot() {
    const { ready, maxReady, hits, misses, earlyBytes } = this;
    return { ready, maxReady, hits, misses, earlyBytes };
  }

  #changed(): void {
    for (const w of [...this.#waiters]) w();
  }
}
