/**
 * `TunnelSource`: "open a tunnel to this target" for a long-running sender, backed by its warm-leg
 * pool when it has one. Port-forward and socks5-proxy use it through `serveTunnels`; anything else
 * that serves many clients over one relay + hybrid connection (an agent) can reuse it:
 *
 * ```ts
 * const source = new TunnelSource({ relay, logger, pool: { min: 2, max: 16 } });
 * const input = new ClientInput(conn); // only for early data
 * const tunnel = await source.open("10.0.0.5:22", { signal, earlyData: input });
 * await observedBridge("sender", tunnel.target, input, tunnel.socket, { ... });
 * await source.close(); // at the end: closes the idle warm legs
 * ```
 *
 * A client that finds no ready leg waits for the pool's next one (WarmPool.next: at most its own
 * warm dial, else a cold dial). A warm leg found dead (it fails or closes before any answer) is
 * dropped and the client retried once, on another ready leg or a cold dial, with the same early
 * bytes: never failed for that.
 */
import type { Logger } from "../observe/log.ts";
import type { PoolMetrics } from "../observe/metrics.ts";
import { FEATURES } from "../tunnel/envelope.ts";
import type { TunnelObserver } from "../tunnel/observer.ts";
import { FEATURE_EARLY_DATA, FEATURE_WARM } from "../tunnel/warm.ts";
import type { ClientInput } from "./early_data.ts";
import {
  dialTunnel,
  EnvelopeExchangeError,
  type EnvelopeTunnelOptions,
  exchangeEnvelope,
  type OpenedTunnel,
  requestTunnel,
  type SenderRelayConfig,
  type TunnelRequest,
} from "./open_tunnel.ts";
import { type PoolTimings, WarmPool } from "./warm_pool.ts";
import type { WarmLeg } from "./warm_leg.ts";

export interface TunnelSourceOptions {
  relay: SenderRelayConfig;
  logger: Logger;
  observer?: TunnelObserver;
  /** Features to offer (default all); `[]` behaves like a Go sender (and never warms). */
  features?: readonly string[];
  /** Warm legs between `min` and `max`; absent or `max` 0: every tunnel is dialled (today's). */
  pool?: { min: number; max: number; timings?: Partial<PoolTimings> };
  metrics?: PoolMetrics;
}

export interface OpenOptions {
  /** Gives up the open (the relay dial, the exchange). */
  signal?: AbortSignal;
  /**
   * The client's side, for early data: on a warm leg that grants it, the client's bytes go out
   * right after the envelope. Bridge this input (not the raw socket) afterwards. On a refusal the
   * caller closes the client; nothing was delivered.
   */
  earlyData?: ClientInput;
}

export class TunnelSource {
  readonly #opts: TunnelSourceOptions;
  readonly #offered: readonly string[];
  /** Undefined when warm legs are off. */
  readonly pool?: WarmPool;

  constructor(opts: TunnelSourceOptions) {
    this.#opts = opts;
    const on = (opts.pool?.max ?? 0) > 0;
    const all = opts.features ?? FEATURES;
    // Off: offer exactly what a build without warm legs did.
    this.#offered = on ? all : all.filter((f) => f !== FEATURE_WARM && f !== FEATURE_EARLY_DATA);
    if (on && opts.pool) {
      this.pool = new WarmPool({
        relay: opts.relay,
        min: opts.pool.min,
        max: opts.pool.max,
        logger: opts.logger,
        metrics: opts.metrics,
        features: this.#offered,
        timings: opts.pool.timings,
      });
    }
  }

  /** Opens a tunnel to `target`. Throws as `openEnvelopeTunnel`. */
  async open(target: string, opts: OpenOptions = {}): Promise<OpenedTunnel> {
    const tunnelOpts: EnvelopeTunnelOptions = {
      relay: this.#opts.relay,
      logger: this.#opts.logger,
      observer: this.#opts.observer,
      features: this.#offered,
      signal: opts.signal,
    };
    const req = requestTunnel(target, tunnelOpts);
    const endOpen = this.pool?.beginOpen();
    try {
      // A dead first leg gets one retry: a second ready leg, else the cold dial below. The first
      // take decides hit or miss: one count per tunnel, whatever the retry finds.
      let counted = false;
      for (const retry of [true, false]) {
        const ready = this.pool?.take();
        if (this.pool && !counted) {
          counted = true;
          if (ready) this.#opts.metrics?.hit();
          else this.#opts.metrics?.miss();
        }
        const leg = ready ?? (retry ? await this.pool?.next(opts.signal) : undefined);
        if (!leg) break;
        const opened = await this.#onWarmLeg(leg, req, tunnelOpts, opts.earlyData, retry);
        if (opened) return opened;
      }
      const tunnel = await dialTunnel(req, tunnelOpts);
      opts.earlyData?.accepted(0);
      this.pool?.noteFeatures(tunnel.features);
      return tunnel;
    } finally {
      endOpen?.();
    }
  }

  /** Closes the pool's idle legs; tunnels already open are not touched. */
  async close(): Promise<void> {
    await this.pool?.close();
  }

  /**
   * The exchange on a warm leg; undefined when the leg turned out dead (retry) and `retry`
   * allows one more try. Throws as `exchangeEnvelope` otherwise.
   */
  async #onWarmLeg(
    leg: WarmLeg,
    req: TunnelRequest,
    tunnelOpts: EnvelopeTunnelOptions,
    input: ClientInput | undefined,
    retry: boolean,
  ): Promise<OpenedTunnel | undefined> {
    const early = input && leg.earlyData ? input.pump() : undefined;
    req.log.debug("warm leg used", { leg_id: leg.id, early_data: early !== undefined });
    try {
      const tunnel = await exchangeEnvelope(leg.socket, req, tunnelOpts, {
        reply: () => leg.reply,
        early,
        quietLoss: retry,
      });
      this.#usedDial(leg);
      input?.accepted(early?.sent ?? 0);
      if (!early?.sent) return tunnel;
      this.#opts.metrics?.earlyData(early.sent);
      tunnel.logger.debug("early data sent", { bytes: early.sent });
      return { ...tunnel, earlyBytes: early.sent };
    } catch (err) {
      // A lost leg is retried only when the listener cannot have bridged client bytes from it:
      // none was handed to it (a failed envelope write starts no pump, so it counts 0). Otherwise
      // the listener may have answered ok and delivered them before the relay cut the leg, and a
      // retry would deliver them twice: the client fails instead, closed as on a refusal.
      const replayable = (early?.attempted ?? 0) === 0;
      if (!(retry && err instanceof EnvelopeExchangeError && err.lost && replayable)) {
        this.#usedDial(leg);
        throw err;
      }
      leg.logger.debug("warm leg died", { reason: "lost", bridge_id: req.bridgeId });
      return undefined;
    }
  }

  /** A tunnel on a warm leg reports that leg's dial, as a cold one reports its own: one each. */
  #usedDial(leg: WarmLeg): void {
    this.#opts.observer?.relayDialEnded?.();
    this.#opts.observer?.dialDuration?.("sender", leg.dialMs);
  }
}
