/**
 * `relay-listener` as a service: keeps the control channel up and serves each accept (slot →
 * rendezvous → handler). Says `listener ready` once first connected; refused before that (bad
 * key, no Listen, no such hybrid connection) it stops with a ListenerRefusedError. A warm leg (lib/tunnel/warm.ts) is held until its envelope and takes its
 * connection slot only then. On stop it closes the control channel, abandons accepts that have not
 * reached their data phase (held warm legs are closed with 1001), lets bridged tunnels finish for
 * `drainTimeoutMs` (or until `force`), then cancels them.
 */
import { errorMessage } from "../errors.ts";
import { getLogger, type Logger } from "../observe/log.ts";
import { acceptAddressPolicy } from "../relay/accept_address.ts";
import {
  type AcceptMessage,
  ControlSessionError,
  runControlChannel,
} from "../relay/control_channel.ts";
import type { RelayEndpoint } from "../relay/endpoint.ts";
import { newId } from "../relay/ids.ts";
import { acceptRendezvous, rejectRendezvous } from "../relay/rendezvous.ts";
import type { TokenProvider } from "../relay/token.ts";
import type { RelayAuthMode } from "../relay/token_from_env.ts";
import type { Allowlist } from "../tunnel/allowlist.ts";
import { FEATURES, MAX_ENVELOPE_SIZE } from "../tunnel/envelope.ts";
import type { TunnelObserver } from "../tunnel/observer.ts";
import { TaskTracker } from "../tunnel/tracker.ts";
import { FEATURE_MUX, FEATURE_WARM, isMuxStart, isWarmLeg } from "../tunnel/warm.ts";
import { MUX_HEADER_BYTES } from "../mux/frame.ts";
import type { WebSocketConn } from "../ws/conn.ts";
import { type HandlerConfig, type HandlerContext, handleTunnel } from "./handler.ts";
import { Slots } from "./slots.ts";
import { logReady } from "./ready_line.ts";
import { isStartupRefusal, startupRefusal } from "./refusal.ts";
import { holdWarmLeg } from "./warm_hold.ts";
import { serveSharedLeg, SHARED_LEGS_GROWTH, type SharedLegContext } from "./shared_leg.ts";
import { WindowBudget } from "../mux/budget.ts";

export interface ListenerOptions {
  endpoint: RelayEndpoint;
  entity: string;
  tokens: TokenProvider;
  /** For the ready line (`auth=sas key_name=…`); without it the line names `tokens.kind` only. */
  auth?: RelayAuthMode;
  caCerts?: string[];
  /** `--relay-suffix`: its hosts count as the relay's domain for accept addresses. */
  relaySuffix?: string;
  /** `--relay-accept-host`: further hosts (`host` or `host:port`) accept addresses may name. */
  acceptHosts?: readonly string[];
  /** null: every target is permitted (a WARN says so at start). */
  allowlist: Allowlist | null;
  /** Concurrent tunnels; 0 = unlimited. Accepts beyond it are refused with 503. */
  maxConnections?: number;
  /**
   * The `maxConnections` slots, when the caller changes the limit while the listener runs
   * (`up`'s SIGHUP: `connections.setLimit(n)`); their limit replaces `maxConnections`.
   */
  connections?: Slots;
  /** Warm legs held at once (default 16); 0: none held and `warm` not granted. */
  maxWarmLegs?: number;
  /** Hears the number of held warm legs on every change (the `aztunnel_warm_legs_held` gauge). */
  onWarmLegsChange?(held: number): void;
  /** Envelope read and target dial deadline; default 30 s. */
  connectTimeoutMs?: number;
  keepAlive?: boolean;
  /** How long open tunnels may finish after `signal` aborts; default 10 s. */
  drainTimeoutMs?: number;
  /** See BridgeOptions.halfCloseLingerMs. */
  halfCloseLingerMs?: number;
  signal: AbortSignal;
  /** A second stop request: open tunnels are cut without waiting for the drain. */
  force?: AbortSignal;
  logger?: Logger;
  /** Minted when absent. */
  listenerId?: string;
  observer?: TunnelObserver;
  onConnectedChange?(up: boolean): void;
  /** Test seams. */
  handler?: Pick<HandlerConfig, "dial" | "features" | "pingIntervalMs">;
  controlChannel?: { reconnectBaseMs?: number; pingIntervalMs?: number };
  /** Test seam: a held warm leg's idle limit (default WARM_IDLE_MS). */
  warmIdleMs?: number;
}

export const MAX_CONNECTIONS_STATUS = 503;
export const MAX_CONNECTIONS_DESCRIPTION = "listener at max connections";
export const WARM_LIMIT_STATUS = 503;
export const WARM_LIMIT_DESCRIPTION = "warm leg limit reached";
export const DEFAULT_MAX_WARM_LEGS = 16;
const REJECT_TIMEOUT_MS = 10_000;

/** What serving one accept needs. */
interface Serving {
  readonly opts: ListenerOptions;
  readonly cfg: HandlerConfig;
  readonly tracker: TaskTracker;
  /** `--max-connections`: bridged tunnels, and accepts on their way there. */
  readonly slots: Slots;
  /** `--max-warm-legs`; null when warm legs are off. */
  readonly warm: Slots | null;
  /** What a held warm leg's hello grants. */
  readonly features: readonly string[];
  /** Window growth of all shared legs (lib/listener/shared_leg.ts). */
  readonly sharedGrowth: WindowBudget;
  /** Cold accepts queued behind waiting warm legs (bounded by the warm cap). */
  coldQueued: number;
}

/** What this listener grants: every feature this build has; `warm` and `mux` only when legs are held. */
function listenerFeatures(maxWarmLegs: number): readonly string[] {
  return maxWarmLegs > 0
    ? FEATURES
    : FEATURES.filter((f) => f !== FEATURE_WARM && f !== FEATURE_MUX);
}

/**
 * Runs until `opts.signal` aborts and every tunnel has ended; rejects with a ListenerRefusedError
 * when the relay refuses it before it was ever connected.
 */
export async function runListener(opts: ListenerOptions): Promise<void> {
  const listenerId = opts.listenerId ?? newId();
  const log = (opts.logger ?? getLogger()).with({ listener_id: listenerId });
  if (!opts.allowlist) log.warn("no allowlist configured, all targets will be permitted");
  const maxWarm = opts.maxWarmLegs ?? DEFAULT_MAX_WARM_LEGS;
  const features = opts.handler?.features ?? listenerFeatures(maxWarm);
  const cfg: HandlerConfig = {
    listenerId,
    allowlist: opts.allowlist,
    connectTimeoutMs: opts.connectTimeoutMs ?? 30_000,
    keepAlive: opts.keepAlive ?? true,
    halfCloseLingerMs: opts.halfCloseLingerMs,
    observer: opts.observer,
    ...opts.handler,
    features,
  };
  const s: Serving = {
    opts,
    cfg,
    tracker: new TaskTracker(opts.signal),
    slots: opts.connections ?? new Slots(opts.maxConnections ?? 0),
    warm: maxWarm > 0 ? new Slots(maxWarm, opts.onWarmLegsChange) : null,
    features,
    sharedGrowth: new WindowBudget(SHARED_LEGS_GROWTH),
    coldQueued: 0,
  };
  if (s.warm) opts.onWarmLegsChange?.(0);
  const acceptPolicy = acceptAddressPolicy(opts.endpoint, {
    suffix: opts.relaySuffix,
    extraHosts: opts.acceptHosts,
  });
  // Tunnels outlive the control session that accepted them (unlike the Go tool): a rendezvous
  // socket does not depend on the control channel, and Azure recycles every control channel daily,
  // which would otherwise cut every open ssh session. Only the drain deadline cancels them.
  const onAccept = (accept: AcceptMessage, ctx: { logger: Logger }) => {
    if (s.warm && isWarmLeg(accept.connectHeaders)) serveWarm(s, s.warm, accept, ctx.logger);
    else serveCold(s, accept, ctx.logger);
  };
  let refused: ControlSessionError | undefined;
  await runControlChannel({
    endpoint: opts.endpoint,
    entity: opts.entity,
    tokens: opts.tokens,
    caCerts: opts.caCerts,
    logger: log,
    signal: opts.signal,
    acceptPolicy,
    onAccept,
    onConnectedChange: announcingReady(opts, log, s.slots, maxWarm),
    fatalBeforeConnected: isStartupRefusal,
    reconnectBaseMs: opts.controlChannel?.reconnectBaseMs,
    pingIntervalMs: opts.controlChannel?.pingIntervalMs,
  }).catch((err) => {
    if (!(err instanceof ControlSessionError)) throw err;
    refused = err;
  });
  await s.tracker.drain(opts.drainTimeoutMs ?? 10_000, { logger: log, force: opts.force });
  if (refused) throw startupRefusal(refused, opts.endpoint, opts.entity);
}

/** `opts.onConnectedChange`, plus `listener ready` the first time the channel is up. */
function announcingReady(
  opts: ListenerOptions,
  log: Logger,
  slots: Slots,
  maxWarmLegs: number,
): (up: boolean) => void {
  let ready = false;
  return (up) => {
    if (up && !ready) {
      ready = true;
      logReady(log, {
        endpoint: opts.endpoint,
        hyco: opts.entity,
        allowlist: opts.allowlist,
        maxConnections: slots.limit,
        maxWarmLegs,
        auth: opts.auth,
        tokensKind: opts.tokens.kind,
      });
    }
    opts.onConnectedChange?.(up);
  };
}

/**
 * An ordinary accept: a connection slot now or a 503, then the handler. While used warm legs wait
 * for a slot, a cold accept queues behind them (FIFO, up to the connect timeout) instead: every
 * freed slot goes to the queue, so a 503 then would starve cold senders for as long as warm legs
 * keep waiting. Those cold waiters are bounded by the warm cap, as the warm ones are.
 */
function serveCold(s: Serving, accept: AcceptMessage, log: Logger): void {
  if (s.slots.tryAcquire()) {
    log.debug("accept acquired");
    s.tracker.track(coldTunnel(s, accept, log));
    return;
  }
  if (s.slots.waiting === 0 || s.coldQueued >= (s.warm?.limit ?? 0)) {
    log.warn("accept_dropped", { reason: "semaphore_full" });
    reject(s, accept, MAX_CONNECTIONS_STATUS, MAX_CONNECTIONS_DESCRIPTION, log);
    return;
  }
  s.coldQueued++;
  s.tracker.track((async () => {
    const ok = await waitForSlot(s, log, "cold accept").finally(() => s.coldQueued--);
    if (!ok) {
      log.warn("accept_dropped", { reason: "semaphore_full" });
      reject(s, accept, MAX_CONNECTIONS_STATUS, MAX_CONNECTIONS_DESCRIPTION, log);
      return;
    }
    log.debug("accept acquired");
    await coldTunnel(s, accept, log);
  })());
}

/** A cold accept that holds a connection slot: rendezvous and handler, then the slot back. */
async function coldTunnel(s: Serving, accept: AcceptMessage, log: Logger): Promise<void> {
  try {
    const ws = await rendezvous(s, accept, log);
    await handleTunnel(ws, s.cfg, handlerContext(s, log));
  } catch {
    // acceptRendezvous logged accept_dropped; the handler never rejects
  } finally {
    s.slots.release();
    log.debug("accept released");
  }
}

/**
 * A warm leg: a warm slot now or a 503, hello, hold; once its envelope arrives a connection slot is
 * taken (waiting up to the connect timeout for one, as a cold sender would retry its 503s), then
 * the warm slot is given back and the handler runs, exactly as for a cold accept. The warm slot is
 * kept while it waits, so waiting legs stay bounded by --max-warm-legs: a sender cycling legs
 * cannot grow the queue.
 */
function serveWarm(s: Serving, warm: Slots, accept: AcceptMessage, log: Logger): void {
  if (!warm.tryAcquire()) {
    log.warn("accept_dropped", { reason: "warm_limit" });
    reject(s, accept, WARM_LIMIT_STATUS, WARM_LIMIT_DESCRIPTION, log);
    return;
  }
  const opening = s.tracker.stopSignal;
  s.tracker.track((async () => {
    let held = true;
    const unhold = () => {
      if (!held) return;
      held = false;
      warm.release();
    };
    try {
      // A warm leg may become a shared one, whose frames carry a 5-byte header.
      const ws = await rendezvous(s, accept, log, MAX_ENVELOPE_SIZE + MUX_HEADER_BYTES);
      const first = await holdWarmLeg(ws, {
        listenerId: s.cfg.listenerId,
        features: s.features,
        idleMs: s.opts.warmIdleMs,
        signal: opening,
        logger: log,
      });
      if (!first) return;
      if (isMuxStart(first) && s.features.includes(FEATURE_MUX)) {
        await serveSharedLeg(ws, sharedLegContext(s), log);
        return;
      }
      if (!s.slots.tryAcquire() && !await waitForSlot(s, log)) {
        unhold();
        if (opening.aborted) {
          log.debug("warm leg closed, listener stopping");
          await ws.close(1001, "shutting down").catch(() => ws.closeNow());
          return;
        }
        log.warn("accept_dropped", { reason: "semaphore_full" });
        await ws.close(1013, MAX_CONNECTIONS_DESCRIPTION).catch(() => ws.closeNow());
        return;
      }
      unhold();
      log.debug("accept acquired");
      try {
        await handleTunnel(ws, s.cfg, { ...handlerContext(s, log), first });
      } finally {
        s.slots.release();
        log.debug("accept released");
      }
    } catch {
      // acceptRendezvous logged accept_dropped; the hold and the handler never reject
    } finally {
      unhold();
    }
  })());
}

/** A used warm leg (or a cold accept behind one) at max connections: wait up to the connect timeout. */
function waitForSlot(
  s: Serving,
  log: Logger,
  what = "warm leg",
  gone?: AbortSignal,
): Promise<boolean> {
  log.debug(`${what} waits for a connection slot`);
  const signal = gone ? AbortSignal.any([s.tracker.stopSignal, gone]) : s.tracker.stopSignal;
  return s.slots.acquire(s.cfg.connectTimeoutMs, signal);
}

function reject(
  s: Serving,
  accept: AcceptMessage,
  status: number,
  description: string,
  log: Logger,
): void {
  s.tracker.track(
    rejectRendezvous(accept.address, status, description, {
      caCerts: s.opts.caCerts,
      timeoutMs: REJECT_TIMEOUT_MS,
      signal: s.tracker.stopSignal,
    }).catch((err) => log.debug("reject failed", { error: errorMessage(err) })),
  );
}

function rendezvous(
  s: Serving,
  accept: AcceptMessage,
  log: Logger,
  maxMessageSize = MAX_ENVELOPE_SIZE,
): Promise<WebSocketConn> {
  return acceptRendezvous(accept.address, {
    caCerts: s.opts.caCerts,
    logger: log,
    // The drain aborts `opening` before `cancelSignal`, so this covers both.
    signal: s.tracker.stopSignal,
    // Go's read limit, for the envelope and (lib/ws has one limit per socket) every message
    // after it: Go and Deno senders never send larger ones.
    maxMessageSize,
  });
}

function handlerContext(s: Serving, log: Logger): HandlerContext {
  return {
    logger: log,
    signal: s.tracker.cancelSignal,
    opening: s.tracker.stopSignal,
    enterBridge: () => s.tracker.enterBridge(),
  };
}

function sharedLegContext(s: Serving): SharedLegContext {
  return {
    cfg: s.cfg,
    slots: s.slots,
    handlerContext: (log) => handlerContext(s, log),
    waitForSlot: (log, gone) => waitForSlot(s, log, "shared leg stream", gone),
    fullDescription: MAX_CONNECTIONS_DESCRIPTION,
    stop: s.tracker.stopSignal,
    track: (task) => s.tracker.track(task),
    idleMs: s.opts.warmIdleMs,
    growth: s.sharedGrowth,
  };
}
