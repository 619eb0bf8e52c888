/**
 * One warm leg: a sender WebSocket dialled ahead of demand with `Aztunnel-Leg: warm`, kept only
 * once its listener said hello (a Go listener says nothing and would drop it after its 30 s
 * envelope deadline). While idle it is pinged, recycled before the relay's idle limit, and
 * watched for its end by the `receive()` that will read the envelope's answer once it is used.
 *
 * A warm dial is one attempt, never dialRelay's retries: no client depends on it (a cold dial, with
 * its retries, serves any client it would have served), and a 503 "warm leg limit reached" or a
 * 404 retried for 30 s would hold a pool slot and keep the pool from warming for that long.
 */
import { deadline, DeadlineError } from "../async.ts";
import { AztunnelError } from "../errors.ts";
import type { Logger } from "../observe/log.ts";
import { DEFAULT_ATTEMPT_TIMEOUT_MS } from "../relay/dial.ts";
import { describeDialFailure } from "../relay/dial_error.ts";
import { newId } from "../relay/ids.ts";
import { connectUrl, resourceUri, withToken } from "../relay/urls.ts";
import { negotiate } from "../tunnel/envelope.ts";
import {
  decodeHello,
  FEATURE_EARLY_DATA,
  WARM_LEG_HEADER,
  WARM_LEG_VALUE,
  type WarmHello,
} from "../tunnel/warm.ts";
import { connectWebSocket } from "../ws/client.ts";
import type { WebSocketConn } from "../ws/conn.ts";
import type { MessageSocket, WsMessage } from "../ws/types.ts";
import type { SenderRelayConfig } from "./open_tunnel.ts";

/** The listener's hello must come this soon; a Go listener never sends one. */
export const HELLO_TIMEOUT_MS = 5_000;
export const IDLE_PING_INTERVAL_MS = 30_000;
export const IDLE_PING_TIMEOUT_MS = 10_000;
/** Unused legs are replaced at this age, before Azure drops idle rendezvous sockets (~120 s). */
export const RECYCLE_AGE_MS = 90_000;

/** The warm dial's one attempt failed (refused, 503 at the listener's warm cap, no answer). */
export class WarmDialError extends AztunnelError {
  constructor(message: string, options?: ErrorOptions) {
    super("warm_dial_failed", message, options);
    this.name = "WarmDialError";
  }
}

/** The leg was not warm: no hello in time, or something else came first. */
export class NoHelloError extends AztunnelError {
  constructor(message: string) {
    super("no_hello", message);
    this.name = "NoHelloError";
  }
}

export interface WarmLegDialOptions {
  relay: SenderRelayConfig;
  /** Features we offer; the leg's are their intersection with the hello's. */
  offered: readonly string[];
  signal: AbortSignal;
  logger: Logger;
  helloTimeoutMs?: number;
}

export interface IdleTimings {
  pingIntervalMs: number;
  pingTimeoutMs: number;
  recycleAgeMs: number;
}

/** Why an idle leg left the pool. */
export type LegEnd = "died" | "ping_failed" | "recycle";

export class WarmLeg {
  readonly id: string;
  readonly socket: MessageSocket;
  readonly hello: WarmHello;
  /** Offered by us and granted by the hello. */
  readonly features: string[];
  /** The answer to the envelope, pending since the hello; while idle it settling means an end. */
  readonly reply: Promise<WsMessage | null>;
  readonly logger: Logger;
  /** How long its relay dial took (retries included): a tunnel on it reports this dial. */
  readonly dialMs: number;
  /** performance.now() when it said hello: its age counts from here (the relay's idle limit). */
  readonly readyAt = performance.now();
  #idle = false;
  #timers: ReturnType<typeof setTimeout>[] = [];

  constructor(
    id: string,
    socket: MessageSocket,
    hello: WarmHello,
    offered: readonly string[],
    logger: Logger,
    dialMs: number,
  ) {
    this.id = id;
    this.dialMs = dialMs;
    this.socket = socket;
    this.hello = hello;
    this.features = negotiate(offered, hello.features);
    this.logger = logger;
    this.reply = socket.receive();
    // Read by the watcher or the exchange; a rejection is an end, never unhandled.
    this.reply.catch(() => {});
  }

  /** The listener takes client bytes before its answer on this leg. */
  get earlyData(): boolean {
    return this.features.includes(FEATURE_EARLY_DATA);
  }

  /**
   * Idles the leg until `take()`: pings it, recycles it at `recycleAgeMs`, and calls `onEnd` once
   * if it ends first (it is closed by then).
   */
  idle(timings: IdleTimings, onEnd: (why: LegEnd) => void): void {
    this.#idle = true;
    const end = (why: LegEnd, close: () => void) => {
      if (!this.#idle) return;
      this.#stopIdle();
      close();
      onEnd(why);
    };
    const drop = () => this.socket.closeNow();
    this.reply.then(() => end("died", drop), () => end("died", drop));
    this.#timers.push(setInterval(() => {
      this.socket.ping(timings.pingTimeoutMs).catch(() => end("ping_failed", drop));
    }, timings.pingIntervalMs));
    this.#timers.push(
      setTimeout(() => end("recycle", () => this.close(1000, "recycle")), timings.recycleAgeMs),
    );
  }

  /** Hands the leg out: true when it was still idle (its answer is still to come). */
  take(): boolean {
    if (!this.#idle) return false;
    this.#stopIdle();
    return true;
  }

  /** Closes an idle or never-used leg; resolves once its socket is released. */
  async close(code: number, reason: string): Promise<void> {
    this.#stopIdle();
    await this.socket.close(code, reason).catch(() => this.socket.closeNow());
    await this.socket.closed;
  }

  #stopIdle(): void {
    this.#idle = false;
    for (const t of this.#timers.splice(0)) clearTimeout(t);
  }
}

/** One relay upgrade with the warm mark; WarmDialError on any failure, no retry. */
async function dialOnce(opts: WarmLegDialOptions): Promise<WebSocketConn> {
  const { endpoint, entity, tokens, caCerts } = opts.relay;
  try {
    const { token } = await tokens.getToken(resourceUri(endpoint, entity), opts.signal);
    return await connectWebSocket(withToken(connectUrl(endpoint, entity), token), {
      caCerts,
      headers: [[WARM_LEG_HEADER, WARM_LEG_VALUE]],
      signal: opts.signal,
      timeoutMs: DEFAULT_ATTEMPT_TIMEOUT_MS,
    });
  } catch (err) {
    throw new WarmDialError(`warm dial: ${describeDialFailure(err)}`, { cause: err });
  }
}

/**
 * Dials one warm leg (one attempt) and waits for its hello. Throws WarmDialError, or NoHelloError
 * (the leg is closed with 1000 then).
 */
export async function dialWarmLeg(opts: WarmLegDialOptions): Promise<WarmLeg> {
  const id = newId();
  const log = opts.logger.with({ leg_id: id });
  log.debug("warm leg dialing");
  const started = performance.now();
  const socket = await dialOnce(opts);
  const dialMs = performance.now() - started;
  let hello: WarmHello | null = null;
  try {
    const ms = opts.helloTimeoutMs ?? HELLO_TIMEOUT_MS;
    const first = await deadline(socket.receive(), ms, { signal: opts.signal });
    if (first?.type === "text") hello = decodeHello(first.data);
    if (!hello) throw new NoHelloError("the listener's first message was not a hello");
  } catch (err) {
    await socket.close(1000, "not warm").catch(() => socket.closeNow());
    await socket.closed;
    if (err instanceof DeadlineError) throw new NoHelloError("no hello from the listener");
    throw err;
  }
  log.debug("warm leg ready", { listener_id: hello.listener_id || undefined });
  return new WarmLeg(id, socket, hello, opts.offered, log, dialMs);
}
