/**
 * Shared legs (issue 10, bursts): a client that finds no warm leg of its own ready rides a stream
 * of a shared leg instead of paying a rendezvous. A shared leg is a warm leg whose listener granted
 * `mux` in its hello, turned by MUX_START into a lib/mux carrier; each stream then runs the usual
 * envelope exchange and bridge, with its own flow control.
 *
 * One carrier with room is kept beside the pool's legs once the pool warms: the pool offers it a
 * new leg before pooling it (and dials another), or it takes a ready one when its carrier went. A carrier that fills up keeps its streams and the next ready leg
 * becomes the one with room. Carriers are pinged like idle legs, busy or not (a dead one fails its
 * ping and its streams); one that is idle and older than the recycle age, or idle and not the one
 * with room, is closed. One that lost a stream before its answer (the listener stopping, or
 * refusing it) takes no new streams. A client alone thus gets a leg of its own (full throughput),
 * and only a burst shares.
 */
import { errorMessage } from "../errors.ts";
import type { Logger } from "../observe/log.ts";
import { MuxSession } from "../mux/session.ts";
import type { MuxStream } from "../mux/stream.ts";
import { FEATURE_MUX, MUX_START } from "../tunnel/warm.ts";
import type { MessageSocket, WsMessage } from "../ws/types.ts";
import type { IdleTimings, WarmLeg } from "./warm_leg.ts";
import type { WarmPool } from "./warm_pool.ts";

/** Streams one shared leg carries at most: what a listener takes on one (SHARED_LEG_MAX_STREAMS). */
export const SHARED_LEG_STREAMS = 32;

export interface SharedLegsOptions {
  pool: WarmPool;
  timings: IdleTimings;
  /** Default SHARED_LEG_STREAMS; 0 turns sharing off. */
  streams?: number;
  /** DEBUG lines per carrier. */
  logger: Logger;
}

/** A stream to run one tunnel on, and what its carrier granted. */
export interface SharedStream {
  stream: MuxStream;
  /** The carrier's listener takes client bytes before its answer. */
  earlyData: boolean;
  /** The carrier's leg id, for the logs. */
  legId: string;
  /** The stream was lost before its answer: no new stream goes to this carrier. */
  retire(): void;
}

interface Carrier {
  leg: WarmLeg;
  session: MuxSession;
  /** Past the recycle age: closed once idle. */
  old: boolean;
  timers: ReturnType<typeof setTimeout>[];
}

export class SharedLegs {
  readonly #opts: SharedLegsOptions;
  readonly #limit: number;
  readonly #all = new Set<Carrier>();
  readonly #tasks = new Set<Promise<void>>();
  /** The carrier new streams go to; undefined until a ready leg that grants `mux` is taken. */
  #current: Carrier | undefined;
  #closed = false;

  constructor(opts: SharedLegsOptions) {
    this.#opts = opts;
    this.#limit = opts.streams ?? SHARED_LEG_STREAMS;
  }

  /** Live carriers (for tests and metrics). */
  get carriers(): number {
    return this.#all.size;
  }

  /** A stream on the carrier with room, or undefined (none yet: one is prepared for the next). */
  open(): SharedStream | undefined {
    this.#refill();
    const c = this.#current;
    if (!c) return undefined;
    const stream = c.session.open();
    if (c.session.streams >= this.#limit) {
      c.leg.logger.debug("shared leg full", { streams: c.session.streams });
      this.#current = undefined;
      this.#refill();
    }
    return {
      stream,
      earlyData: c.leg.earlyData,
      legId: c.leg.id,
      retire: () => this.#stopUsing(c),
    };
  }

  /** A new leg from the pool: kept as the carrier when there is none with room. */
  claim(leg: WarmLeg): boolean {
    if (!this.#wantsCarrier() || !grantsMux(leg)) return false;
    this.#share(leg);
    return true;
  }

  /** Takes a ready leg that grants `mux` as the carrier with room, when there is none. */
  #refill(): void {
    if (!this.#wantsCarrier()) return;
    const leg = this.#opts.pool.take(grantsMux);
    if (leg) this.#share(leg);
  }

  /** Sharing is on and no live carrier has room. */
  #wantsCarrier(): boolean {
    if (this.#closed || this.#limit === 0) return false;
    if (this.#current?.session.ended) this.#current = undefined;
    return this.#current === undefined;
  }

  /** Closes the idle carriers at once and resolves once every carrier has ended. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#current = undefined;
    for (const c of this.#all) {
      c.old = true;
      if (c.session.streams === 0) this.#retire(c);
    }
    while (this.#tasks.size > 0) await Promise.all([...this.#tasks]);
  }

  #share(leg: WarmLeg): void {
    const log = leg.logger;
    const session = new MuxSession(resumed(leg.socket, leg.reply), {
      role: "opener",
      logger: log,
      onStreamsChange: (n) => {
        if (n === 0) this.#idle(c);
        else if (n < this.#limit) this.#reuse(c);
      },
    });
    const c: Carrier = { leg, session, old: false, timers: [] };
    this.#all.add(c);
    this.#current = c;
    log.debug("warm leg shared");
    // Sent before any OPEN: lib/ws serialises sends, so the listener reads it first.
    leg.socket.send(MUX_START).catch((err) => {
      log.debug("shared leg start failed", { error: errorMessage(err) });
      session.closeNow();
    });
    const { pingIntervalMs, pingTimeoutMs, recycleAgeMs } = this.#opts.timings;
    c.timers.push(setInterval(() => {
      if (session.ended) return;
      // A busy carrier's Pong may queue behind its streams' data: any frame since is life too.
      const sent = performance.now();
      session.ping(pingTimeoutMs).catch(() => {
        if (!session.ended && session.lastFrameAt <= sent) session.closeNow();
      });
    }, pingIntervalMs));
    // The relay's idle limit counts from the leg's hello, not from its sharing.
    const lifeLeft = Math.max(0, recycleAgeMs - (performance.now() - leg.readyAt));
    c.timers.push(setTimeout(() => {
      this.#stopUsing(c);
      this.#refill();
    }, lifeLeft));
    this.#track(session.done.then(() => {
      for (const t of c.timers.splice(0)) clearTimeout(t);
      this.#all.delete(c);
      log.debug("shared leg ended");
      if (this.#current === c) {
        this.#current = undefined;
        this.#refill();
      }
    }));
  }

  /** No new streams on `c`: it closes once its last stream ends. */
  #stopUsing(c: Carrier): void {
    c.old = true;
    if (this.#current === c) this.#current = undefined;
    if (c.session.streams === 0) this.#retire(c);
  }

  /** A full carrier has room again: it takes new streams if no other does. */
  #reuse(c: Carrier): void {
    if (this.#closed || c.old || c.session.ended || this.#current) return;
    this.#current = c;
  }

  /** A carrier's last stream ended: keep it only while it is the one with room and young. */
  #idle(c: Carrier): void {
    if (c.old || this.#current !== c) this.#retire(c);
  }

  /** Closes a carrier that carries nothing: 1001 at the stop, else 1000 "recycle" or "idle". */
  #retire(c: Carrier): void {
    if (this.#current === c) this.#current = undefined;
    for (const t of c.timers.splice(0)) clearTimeout(t);
    const [code, reason] = this.#closed
      ? [1001, "going away"]
      : c.old
      ? [1000, "recycle"]
      : [1000, "idle"];
    this.#track(c.session.close(code, reason));
  }

  #track(p: Promise<unknown>): void {
    const t: Promise<void> = p.then(() => {}, () => {}).finally(() => this.#tasks.delete(t));
    this.#tasks.add(t);
  }
}

const grantsMux = (leg: WarmLeg) => leg.features.includes(FEATURE_MUX);

/** `socket`, whose first `receive()` is the one already pending since the hello (`pending`). */
function resumed(socket: MessageSocket, pending: Promise<WsMessage | null>): MessageSocket {
  let first: Promise<WsMessage | null> | undefined = pending;
  return {
    receive() {
      const next = first ?? socket.receive();
      first = undefined;
      return next;
    },
    send: (data) => socket.send(data),
    ping: (ms) => socket.ping(ms),
    close: (code, reason) => socket.close(code, reason),
    closeNow: () => socket.closeNow(),
    get closeInfo() {
      return socket.closeInfo;
    },
    get closeSent() {
      return socket.closeSent;
    },
    closed: socket.closed,
  };
}
