/**
 * The warm-leg pool of one relay + hybrid connection (issue 10): legs rendezvoused ahead of demand
 * and accepted by a listener that said hello, so a client pays one trip instead of a rendezvous.
 *
 * Warming starts only after a tunnel's answer listed `warm` (the first client is always cold, and a
 * Go listener never lists it). The pool then keeps ready + dialling legs at the target size (see
 * DemandWindow) beyond the clients waiting for one, never more than the cap in all, dials a
 * replacement as soon as a leg is handed out, dies or is recycled, and backs off (1 s doubling to
 * 60 s) after a leg that said no hello or a dial that failed. Background work logs at DEBUG only:
 * no client sees a warm leg's failure.
 *
 * A client that finds no ready leg (a miss, `next()`) waits for the first leg that becomes ready,
 * its own dial's or any other: a dial is in flight for every waiting client, started for it when
 * none is spare. A warm dial costs what a cold one does and then saves the envelope's round trip,
 * so a miss is never slower than a cold dial unless its leg fails; then (or when the cap leaves no
 * dial for it, or warming is off or backing off) the client dials cold. A leg nobody waits for is
 * pooled.
 */
import type { Attrs, Logger } from "../observe/log.ts";
import type { PoolMetrics } from "../observe/metrics.ts";
import { backoffDelay } from "../relay/backoff.ts";
import { errorMessage } from "../errors.ts";
import { FEATURES } from "../tunnel/envelope.ts";
import { FEATURE_WARM } from "../tunnel/warm.ts";
import { DemandWindow } from "./demand.ts";
import type { SenderRelayConfig } from "./open_tunnel.ts";
import {
  dialWarmLeg,
  HELLO_TIMEOUT_MS,
  IDLE_PING_INTERVAL_MS,
  IDLE_PING_TIMEOUT_MS,
  type IdleTimings,
  type LegEnd,
  RECYCLE_AGE_MS,
  type WarmLeg,
  type WarmLegDialOptions,
} from "./warm_leg.ts";

export const DEFAULT_POOL_MIN = 2;
export const DEFAULT_POOL_MAX = 16;
const BACKOFF = { baseMs: 1_000, maxMs: 60_000 };

export interface PoolTimings extends IdleTimings {
  helloTimeoutMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
}

export interface WarmPoolOptions {
  relay: SenderRelayConfig;
  /** The floor: legs kept while warming, whatever the demand. */
  min: number;
  /** The cap; 0 would never warm (callers use no pool at all then). */
  max: number;
  logger: Logger;
  metrics?: PoolMetrics;
  /** Features offered on warm legs; default all. */
  features?: readonly string[];
  /** Tests shorten them. */
  timings?: Partial<PoolTimings>;
  now?: () => number;
  /** Test seam: the warm dial (default dialWarmLeg). */
  dial?: (opts: WarmLegDialOptions) => Promise<WarmLeg>;
  /**
   * Offered each new leg nobody waits for, before it joins the ready ones: true keeps it
   * (lib/sender/shared_legs.ts takes its carrier so), and the pool dials another.
   */
  claim?: (leg: WarmLeg) => boolean;
}

export class WarmPool {
  readonly #opts: WarmPoolOptions;
  readonly #timings: PoolTimings;
  readonly #log: Logger;
  readonly #demand: DemandWindow;
  readonly #stop = new AbortController();
  readonly #tasks = new Set<Promise<void>>();
  #ready: WarmLeg[] = [];
  /** Misses waiting for the next leg, oldest first; undefined sends one to a cold dial. */
  #waiters: ((leg: WarmLeg | undefined) => void)[] = [];
  #dialing = 0;
  #warming = false;
  #failures = 0;
  #backoff: ReturnType<typeof setTimeout> | undefined;

  constructor(opts: WarmPoolOptions) {
    this.#opts = opts;
    this.#timings = {
      helloTimeoutMs: HELLO_TIMEOUT_MS,
      pingIntervalMs: IDLE_PING_INTERVAL_MS,
      pingTimeoutMs: IDLE_PING_TIMEOUT_MS,
      recycleAgeMs: RECYCLE_AGE_MS,
      backoffBaseMs: BACKOFF.baseMs,
      backoffMaxMs: BACKOFF.maxMs,
      ...opts.timings,
    };
    this.#log = debugOnly(opts.logger);
    this.#demand = new DemandWindow(opts.now);
  }

  /** The timings in force (defaults merged with the options'). */
  get timings(): PoolTimings {
    return this.#timings;
  }

  /** Legs ready to hand out. */
  get ready(): number {
    return this.#ready.length;
  }

  /** Legs being dialled (or waiting for their hello). */
  get dialing(): number {
    return this.#dialing;
  }

  /** True once a listener has shown it holds warm legs. */
  get warming(): boolean {
    return this.#warming;
  }

  /** The features a tunnel's answer granted: warming starts at the first that lists `warm`. */
  noteFeatures(features: readonly string[]): void {
    if (this.#warming || !features.includes(FEATURE_WARM)) return;
    this.#warming = true;
    this.#log.debug("warm legs enabled");
    this.#fill();
  }

  /** A client's open begins (it counts for demand); call the returned function when it ends. */
  beginOpen(): () => void {
    const end = this.#demand.begin();
    this.#fill();
    return end;
  }

  /**
   * For a miss (after `take()` found nothing): the first leg to become ready, or undefined at once
   * (or when its dial failed) to dial cold. Dials only while the last warm dial succeeded, so a
   * listener that stopped saying hello costs no client the hello timeout.
   */
  next(signal?: AbortSignal): Promise<WarmLeg | undefined> {
    if (!this.#healthy() || signal?.aborted) return Promise.resolve(undefined);
    const { promise, resolve } = Promise.withResolvers<WarmLeg | undefined>();
    const onAbort = () => settle(undefined);
    const settle = (leg: WarmLeg | undefined) => {
      signal?.removeEventListener("abort", onAbort);
      const i = this.#waiters.indexOf(settle);
      if (i >= 0) this.#waiters.splice(i, 1);
      resolve(leg);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#waiters.push(settle);
    this.#fill();
    // The cap left no dial for this client: cold.
    if (this.#dialing < this.#waiters.length) settle(undefined);
    return promise;
  }

  /**
   * A ready leg (oldest first; the newest `want` accepts, when given: it has the longest life
   * left), or undefined; a replacement dial starts at once.
   */
  take(want?: (leg: WarmLeg) => boolean): WarmLeg | undefined {
    for (;;) {
      const i = want ? this.#ready.findLastIndex(want) : 0;
      const leg = i >= 0 ? this.#ready.splice(i, 1)[0] : undefined;
      if (!leg) return undefined;
      this.#opts.metrics?.legs(-1);
      if (!leg.take()) continue;
      leg.logger.debug("warm leg handed out");
      // Used: the listener holds legs as it should.
      this.#failures = 0;
      this.#fill();
      return leg;
    }
  }

  /** Stops warming and closes the idle legs; resolves once every socket is released. */
  async close(): Promise<void> {
    this.#stop.abort(new DOMException("pool closed", "AbortError"));
    clearTimeout(this.#backoff);
    for (const waiter of [...this.#waiters]) waiter(undefined);
    for (const leg of this.#ready.splice(0)) {
      this.#opts.metrics?.legs(-1);
      this.#track(leg.close(1001, "going away"));
    }
    while (this.#tasks.size > 0) await Promise.all([...this.#tasks]);
  }

  #healthy(): boolean {
    return this.#warming && !this.#stop.signal.aborted && this.#backoff === undefined &&
      this.#failures === 0;
  }

  /** Dials until the target is covered beyond the waiting clients, within the cap in all. */
  #fill(): void {
    if (!this.#warming || this.#stop.signal.aborted || this.#backoff !== undefined) return;
    const cap = this.#opts.max;
    const want = Math.min(cap, this.#demand.target(this.#opts.min, cap) + this.#waiters.length);
    while (this.#ready.length + this.#dialing < want) this.#dialOne();
  }

  #dialOne(): void {
    this.#dialing++;
    const dial = (this.#opts.dial ?? dialWarmLeg)({
      relay: this.#opts.relay,
      offered: this.#opts.features ?? FEATURES,
      signal: this.#stop.signal,
      logger: this.#log,
      helloTimeoutMs: this.#timings.helloTimeoutMs,
    });
    this.#track(dial.then((leg) => {
      this.#dialing--;
      if (this.#stop.signal.aborted) return leg.close(1001, "going away");
      // A hello alone does not clear the failures: a listener that says hello and then drops the
      // leg would be redialled at once, forever. A use or a long enough life does (below).
      const waiter = this.#waiters[0];
      if (waiter) {
        leg.logger.debug("warm leg handed out", { waited: true });
        this.#failures = 0;
        waiter(leg);
      } else if (this.#opts.claim?.(leg)) {
        leg.logger.debug("warm leg handed out", { claimed: true });
      } else this.#add(leg);
      this.#fill();
    }, (err) => {
      this.#dialing--;
      if (this.#stop.signal.aborted) return;
      this.#log.debug("warm leg failed", { error: errorMessage(err) });
      this.#backOff();
      // One dial fewer than waiting clients: the one that waited longest dials cold now.
      if (this.#dialing < this.#waiters.length) this.#waiters[0](undefined);
    }));
  }

  #add(leg: WarmLeg): void {
    this.#ready.push(leg);
    this.#opts.metrics?.legs(1);
    const since = performance.now();
    leg.idle(this.#timings, (why: LegEnd) => {
      const i = this.#ready.indexOf(leg);
      if (i >= 0) {
        this.#ready.splice(i, 1);
        this.#opts.metrics?.legs(-1);
      }
      leg.logger.debug(why === "recycle" ? "warm leg recycled" : "warm leg died", { reason: why });
      this.#track(leg.socket.closed);
      // Unused and dead within the first ping interval: the listener (or the relay) drops legs
      // after the hello, so it counts as a failed dial and backs off instead of redialling at once.
      // A leg that lived that long (or was recycled) shows the legs are held: failures clear.
      const lived = performance.now() - since;
      if (why !== "recycle" && lived < this.#timings.pingIntervalMs) return this.#backOff();
      this.#failures = 0;
      this.#fill();
    });
  }

  /** No warming for a while; a failure during a back-off does not extend it. */
  #backOff(): void {
    if (this.#backoff !== undefined) return;
    const ms = backoffDelay(this.#failures++, {
      baseMs: this.#timings.backoffBaseMs,
      maxMs: this.#timings.backoffMaxMs,
    });
    this.#log.debug("warm legs backing off", { delay_ms: ms });
    this.#backoff = setTimeout(() => {
      this.#backoff = undefined;
      this.#fill();
    }, ms);
  }

  #track(p: Promise<unknown>): void {
    const t: Promise<void> = p.then(() => {}, () => {}).finally(() => this.#tasks.delete(t));
    this.#tasks.add(t);
  }
}

/** Background dials report at DEBUG: the relay dial's WARN lines are for clients' dials. */
function debugOnly(log: Logger): Logger {
  const debug = (msg: string, attrs?: Attrs) => log.debug(msg, attrs);
  return { debug, info: debug, warn: debug, error: debug, with: (a) => debugOnly(log.with(a)) };
}
