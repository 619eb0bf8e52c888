/**
 * A shared leg on the listener (FEATURE_MUX, lib/mux): a warm leg whose sender sent MUX_START
 * carries many tunnels. Each stream is served as a cold accept is — a connection slot, then the
 * handler, which reads that stream's envelope within --connect-timeout — so the allowlist,
 * --max-connections, metrics and logs apply per tunnel exactly as without sharing.
 *
 * The leg keeps its warm slot for its whole life (held legs stay bounded by --max-warm-legs, shared
 * or not), is closed after the warm idle limit once it carries nothing, and at a stop as soon as
 * its tunnels have ended; streams opened during the stop are closed at once with 1001. At
 * --max-connections one stream per leg may wait for a slot (as one warm leg would), only while it
 * lives; the others get 1013 at once, so a sender cannot queue waiters past the limits.
 *
 * Window growth of all shared legs comes from one budget (`growth`), so a sender that grows every
 * window it can still meets a bound of its own.
 */
import type { Logger } from "../observe/log.ts";
import type { WindowBudget } from "../mux/budget.ts";
import { MuxSession } from "../mux/session.ts";
import type { MuxStream } from "../mux/stream.ts";
import type { MessageSocket } from "../ws/types.ts";
import { type HandlerConfig, type HandlerContext, handleTunnel } from "./handler.ts";
import type { Slots } from "./slots.ts";
import { WARM_IDLE_MS } from "./warm_hold.ts";

/** Streams one shared leg may carry at once; an OPEN beyond is answered 1013 at once. */
export const SHARED_LEG_MAX_STREAMS = 32;
/** Window growth all of a listener's shared legs may take together (each takes at most 8 MiB). */
export const SHARED_LEGS_GROWTH = 32 * 1024 * 1024;

export interface SharedLegContext {
  cfg: HandlerConfig;
  slots: Slots;
  /** The context each stream's handler runs in. */
  handlerContext(log: Logger): HandlerContext;
  /**
   * At --max-connections: wait for a slot (up to the connect timeout, or until `signal`); false
   * when none came.
   */
  waitForSlot(log: Logger, signal: AbortSignal): Promise<boolean>;
  /** Refused at --max-connections: the Close reason. */
  fullDescription: string;
  /** The listener is stopping. */
  stop: AbortSignal;
  /** Each stream's task, so the drain waits for it. */
  track(task: Promise<void>): void;
  /** Default WARM_IDLE_MS. */
  idleMs?: number;
  /** The listener's growth budget for every shared leg (SHARED_LEGS_GROWTH). */
  growth: WindowBudget;
}

/** Serves the shared leg until it ends; never rejects. */
export async function serveSharedLeg(
  ws: MessageSocket,
  ctx: SharedLegContext,
  log: Logger,
): Promise<void> {
  const idleMs = ctx.idleMs ?? WARM_IDLE_MS;
  let idle: ReturnType<typeof setTimeout> | undefined;
  const whenIdle = () => {
    if (ctx.stop.aborted) {
      log.debug("shared leg closed, listener stopping");
      session.close(1001, "shutting down");
      return;
    }
    idle = setTimeout(() => {
      log.debug("shared leg idle-closed");
      session.close(1000, "idle");
    }, idleMs);
  };
  const session = new MuxSession(ws, {
    role: "acceptor",
    maxStreams: SHARED_LEG_MAX_STREAMS,
    sharedGrowth: ctx.growth,
    logger: log,
    onStreamsChange: (n) => {
      clearTimeout(idle);
      if (n === 0) whenIdle();
    },
  });
  const onStop = () => {
    if (session.streams === 0) whenIdle();
  };
  ctx.stop.addEventListener("abort", onStop, { once: true });
  log.debug("shared leg held");
  whenIdle();
  const waiting = { streams: 0 };
  try {
    for (;;) {
      const stream = await session.accept();
      if (!stream) break;
      const streamLog = log.with({ stream_id: stream.id });
      if (ctx.stop.aborted) {
        streamLog.debug("shared leg stream refused, listener stopping");
        ctx.track(stream.close(1001, "shutting down").catch(() => stream.closeNow()));
        continue;
      }
      ctx.track(serveStream(stream, ctx, streamLog, waiting));
    }
    await session.done;
  } finally {
    clearTimeout(idle);
    ctx.stop.removeEventListener("abort", onStop);
  }
  log.debug("shared leg ended");
}

async function serveStream(
  stream: MuxStream,
  ctx: SharedLegContext,
  log: Logger,
  waiting: { streams: number },
): Promise<void> {
  if (!ctx.slots.tryAcquire() && !await waitForSlot(stream, ctx, log, waiting)) {
    await noSlot(stream, ctx, log);
    return;
  }
  log.debug("accept acquired");
  try {
    await handleTunnel(stream, ctx.cfg, ctx.handlerContext(log));
  } finally {
    ctx.slots.release();
    log.debug("accept released");
  }
}

/** One stream per leg waits for a slot, and only while it lives. */
async function waitForSlot(
  stream: MuxStream,
  ctx: SharedLegContext,
  log: Logger,
  waiting: { streams: number },
): Promise<boolean> {
  if (waiting.streams > 0) return false;
  waiting.streams++;
  const gone = new AbortController();
  stream.closed.then(() => gone.abort());
  try {
    return await ctx.waitForSlot(log, gone.signal);
  } finally {
    waiting.streams--;
    gone.abort();
  }
}

/** No slot came: a full listener says so (WARN, 1013); a stop or a stream gone is no news. */
async function noSlot(stream: MuxStream, ctx: SharedLegContext, log: Logger): Promise<void> {
  if (stream.closeSent || stream.closeInfo) {
    log.debug("shared leg stream gone while it waited for a slot");
    stream.closeNow();
  } else if (ctx.stop.aborted) {
    log.debug("shared leg stream refused, listener stopping");
    await stream.close(1001, "shutting down").catch(() => stream.closeNow());
  } else {
    log.warn("accept_dropped", { reason: "semaphore_full" });
    await stream.close(1013, ctx.fullDescription).catch(() => stream.closeNow());
  }
}
