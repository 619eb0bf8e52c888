/**
 * The lanes of a bridge direction, between reading a message from one leg and writing it to the
 * other. Backpressure: with no latency a lane holds at most one message read ahead of the one being
 * written to the other leg. With latency, messages wait in a per-lane pipeline until due, bounded by
 * a byte budget, so a long delay does not throttle throughput to one message per delay.
 */
import { pause } from "../async.ts";

export type LaneItem =
  | { readonly kind: "data"; readonly data: string | Uint8Array; readonly size: number }
  | { readonly kind: "close"; readonly code: number; readonly reason: string };

export interface Lane {
  /** Resolves when the reader may read the next message. */
  push(item: LaneItem): Promise<void>;
  /** Resolves once everything pushed has been delivered. */
  finish(): Promise<void>;
}

/** Stop-and-wait: the reader moves on only after this message was written. */
export class DirectLane implements Lane {
  readonly #deliver: (item: LaneItem) => Promise<void>;
  constructor(deliver: (item: LaneItem) => Promise<void>) {
    this.#deliver = deliver;
  }
  push(item: LaneItem): Promise<void> {
    return this.#deliver(item);
  }
  finish(): Promise<void> {
    return Promise.resolve();
  }
}

/** A pipeline where every item is delivered `delayMs` after it was read, in order. */
export class DelayLane implements Lane {
  readonly #deliver: (item: LaneItem) => Promise<void>;
  readonly #delayMs: number;
  readonly #budget: number;
  readonly #stop: AbortSignal;
  readonly #queue: { item: LaneItem; due: number }[] = [];
  #queuedBytes = 0;
  #writer: Promise<void> | null = null;
  #space: (() => void) | null = null;
  #work: (() => void) | null = null;

  constructor(
    deliver: (item: LaneItem) => Promise<void>,
    delayMs: number,
    budget: number,
    stop: AbortSignal,
  ) {
    this.#deliver = deliver;
    this.#delayMs = delayMs;
    this.#budget = budget;
    this.#stop = stop;
    stop.addEventListener("abort", () => this.#wake(), { once: true });
  }

  async push(item: LaneItem): Promise<void> {
    const size = item.kind === "data" ? item.size : 0;
    // A single message bigger than the budget still goes, alone.
    while (
      !this.#stop.aborted && this.#queue.length > 0 && this.#queuedBytes + size > this.#budget
    ) {
      await new Promise<void>((resolve) => this.#space = resolve);
    }
    if (this.#stop.aborted) return;
    this.#queue.push({ item, due: performance.now() + this.#delayMs });
    this.#queuedBytes += size;
    this.#work?.();
    this.#writer ??= this.#runWriter();
  }

  finish(): Promise<void> {
    return this.#writer ?? Promise.resolve();
  }

  async #runWriter(): Promise<void> {
    while (!this.#stop.aborted) {
      const head = this.#queue[0];
      if (!head) {
        await new Promise<void>((resolve) => this.#work = resolve);
        this.#work = null;
        continue;
      }
      const wait = head.due - performance.now();
      if (wait > 0) {
        await pause(wait, this.#stop);
        continue;
      }
      await this.#deliver(head.item);
      this.#queue.shift();
      if (head.item.kind === "data") this.#queuedBytes -= head.item.size;
      this.#space?.();
      this.#space = null;
      if (head.item.kind === "close") return;
    }
  }

  #wake(): void {
    this.#space?.();
    this.#work?.();
  }
}
