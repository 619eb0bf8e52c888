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
 * warm dial, else a cold dial); with no leg ready it may ride a stream of the shared leg instead
 * (lib/sender/shared_legs.ts). A warm leg or stream found dead (it fails or closes before any
 * answer) is dropped and the client retried — another ready leg once, the shared leg once, then a
 * cold dial — with the same early bytes: never failed for that.
 */
import type { Logger } from "../observe/log.ts";
import type { PoolMetrics } from "../observe/metrics.ts";
import { FEATURES } from "../tunnel/envelope.ts";
import type { TunnelObserver } from "../tunnel/observer.ts";
import { FEATURE_EARLY_DATA, FEATURE_MUX, FEATURE_WARM } from "../tunnel/warm.ts";
import { describeClose } from "../ws/close.ts";
import type { MessageSocket, WsMessage } from "../ws/types.ts";
import type { ClientInput, EarlyPump } from "./early_data.ts";
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
import { SharedLegs, type SharedStream } from "./shared_legs.ts";
import { type PoolTimings, WarmPool } from "./warm_pool.ts";
import type { WarmLeg } from "./warm_leg.ts";

export interface TunnelSourceOptions {
  relay: SenderRelayConfig;
  logger: Logger;
  observer?: TunnelObserver;
  /** Features to offer (default all); `[]` behaves like a Go sender (and never warms). */
  features?: readonly string[];
  /**
   * Warm legs between `min` and `max`; absent or `max` 0: every tunnel is dialled (today's).
   * `streams`: how many tunnels a shared leg carries in a burst (default SHARED_LEG_STREAMS; 0:
   * none shared, `mux` not offered).
   */
  pool?: { min: number; max: number; streams?: number; timings?: Partial<PoolTimings> };
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

/**
 * A ready socket that was lost before its answer. `full`: the listener closed it with 1013 after
 * waiting its --connect-timeout for a connection slot, so its other legs would wait the same: the
 * client goes to the cold dial (its own retries, perhaps another listener) instead.
 */
class LostSocket {
  readonly full: boolean;
  constructor(closeCode?: number) {
    this.full = closeCode === 1013;
  }
}

/** A socket ready for an envelope: a warm leg, or a stream of a shared one. */
interface ReadySocket {
  socket: MessageSocket;
  /** The envelope's answer. */
  reply(): Promise<WsMessage | null>;
  early?: EarlyPump;
  /** The tunnel is decided (opened or refused): report its dial. */
  used(): void;
  /** Lost before any answer: logged, then retried. */
  lost(): void;
}

export class TunnelSource {
  readonly #opts: TunnelSourceOptions;
  readonly #offered: readonly string[];
  /** Undefined when warm legs are off. */
  readonly pool?: WarmPool;
  /** Undefined when warm legs or sharing are off. */
  readonly shared?: SharedLegs;

  constructor(opts: TunnelSourceOptions) {
    this.#opts = opts;
    const on = (opts.pool?.max ?? 0) > 0;
    const sharing = on && opts.pool?.streams !== 0;
    const all = opts.features ?? FEATURES;
    // Off: offer exactly what a build without warm legs did.
    this.#offered = all.filter((f) =>
      on || (f !== FEATURE_WARM && f !== FEATURE_EARLY_DATA && f !== FEATURE_MUX)
    ).filter((f) => sharing || f !== FEATURE_MUX);
    if (on && opts.pool) {
      const pool: WarmPool = this.pool = new WarmPool({
        relay: opts.relay,
        min: opts.pool.min,
        max: opts.pool.max,
        logger: opts.logger,
        metrics: opts.metrics,
        features: this.#offered,
        timings: opts.pool.timings,
        claim: (leg) => this.shared?.claim(leg) ?? false,
      });
      if (sharing) {
        this.shared = new SharedLegs({
          pool,
          timings: pool.timings,
          streams: opts.pool.streams,
          logger: opts.logger,
        });
      }
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
      // Each kind of ready socket is tried at most so often (two warm legs, one shared stream),
      // then the cold dial below, so a stopping listener's legs cannot fail a client that another
      // listener (or a new dial) would serve. The first take decides hit or miss: one count per
      // tunnel, whatever the retries find.
      let counted = false;
      let legs = 0;
      let sharing = true;
      for (let pass = 0;; pass++) {
        // Given up while a lost socket was being replaced: no new stream or dial for it.
        if (pass > 0 && opts.signal?.aborted) {
          throw new EnvelopeExchangeError("envelope exchange aborted", undefined, {
            cause: opts.signal.reason,
          });
        }
        const ready = legs < 2 ? this.pool?.take() : undefined;
        // No leg of its own ready: a stream of the shared leg, if one has room.
        const shared = ready || !sharing ? undefined : this.shared?.open();
        if (this.pool && !counted) {
          counted = true;
          if (ready || shared) this.#opts.metrics?.hit();
          else this.#opts.metrics?.miss();
        }
        if (shared) {
          sharing = false;
          const got = await this.#onStream(shared, req, tunnelOpts, opts.earlyData);
          if (!(got instanceof LostSocket)) return got;
          if (got.full) break;
          continue;
        }
        // Until a warm leg has been tried, a miss waits for the pool's next leg (at most its own
        // warm dial, never slower than a cold one); after that a retry takes what is ready.
        const leg = ready ?? (legs === 0 ? await this.pool?.next(opts.signal) : undefined);
        if (!leg) break;
        legs++;
        const got = await this.#onWarmLeg(leg, req, tunnelOpts, opts.earlyData);
        if (!(got instanceof LostSocket)) return got;
        if (got.full) break;
      }
      const tunnel = await dialTunnel(req, tunnelOpts);
      opts.earlyData?.accepted(0);
      this.pool?.noteFeatures(tunnel.features);
      return tunnel;
    } finally {
      endOpen?.();
    }
  }

  /**
   * Closes the pool's idle legs and idle shared legs at once; resolves once the shared legs still
   * carrying tunnels have ended too (they close when their last tunnel does).
   */
  async close(): Promise<void> {
    await Promise.all([this.pool?.close(), this.shared?.close()]);
  }

  /**
   * The exchange on a warm leg; a LostSocket when the leg turned out dead before any answer (the
   * caller tries elsewhere). Throws as `exchangeEnvelope` otherwise.
   */
  async #onWarmLeg(
    leg: WarmLeg,
    req: TunnelRequest,
    tunnelOpts: EnvelopeTunnelOptions,
    input: ClientInput | undefined,
  ): Promise<OpenedTunnel | LostSocket> {
    const early = input && leg.earlyData ? input.pump() : undefined;
    req.log.debug("warm leg used", { leg_id: leg.id, early_data: early !== undefined });
    return await this.#exchange(req, tunnelOpts, input, {
      socket: leg.socket,
      reply: () => leg.reply,
      early,
      used: () => this.#usedDial(leg),
      lost: () => leg.logger.debug("warm leg died", { reason: "lost", bridge_id: req.bridgeId }),
    });
  }

  /** The exchange on a stream of a shared leg: as on a warm leg of its own, with no dial. */
  async #onStream(
    shared: SharedStream,
    req: TunnelRequest,
    tunnelOpts: EnvelopeTunnelOptions,
    input: ClientInput | undefined,
  ): Promise<OpenedTunnel | LostSocket> {
    const { stream, legId } = shared;
    const early = input && shared.earlyData ? input.pump() : undefined;
    req.log.debug("shared leg used", {
      leg_id: legId,
      stream_id: stream.id,
      early_data: early !== undefined,
    });
    return await this.#exchange(req, tunnelOpts, input, {
      socket: stream,
      reply: () => stream.receive(),
      early,
      // The relay took the carrier's dial long ago; a stream has none of its own to time.
      used: () => {
        this.#opts.metrics?.muxStream();
        this.#opts.observer?.relayDialEnded?.();
      },
      lost: () => {
        req.log.debug("shared leg lost", {
          leg_id: legId,
          stream_id: stream.id,
          close: describeClose(stream.closeInfo),
        });
        shared.retire();
      },
    });
  }

  /** The exchange on a ready socket, with what happens after it (see #onWarmLeg). */
  async #exchange(
    req: TunnelRequest,
    tunnelOpts: EnvelopeTunnelOptions,
    input: ClientInput | undefined,
    on: ReadySocket,
  ): Promise<OpenedTunnel | LostSocket> {
    const { early } = on;
    try {
      const tunnel = await exchangeEnvelope(on.socket, req, tunnelOpts, {
        reply: on.reply,
        early,
        quietLoss: true,
      });
      on.used();
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
      if (!(err instanceof EnvelopeExchangeError && err.lost && replayable)) {
        on.used();
        throw err;
      }
      on.lost();
      return new LostSocket(err.closeCode);
    }
  }

  /** A tunnel on a warm leg reports that leg's dial, as a cold one reports its own: one each. */
  #usedDial(leg: WarmLeg): void {
    this.#opts.observer?.relayDialEnded?.();
    this.#opts.observer?.dialDuration?.("sender", leg.dialMs);
  }
}
