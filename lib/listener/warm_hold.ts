/**
 * A warm leg on the listener (lib/tunnel/warm.ts): say hello at once, then wait for the envelope
 * without `--connect-timeout` (the sender keeps the leg for its next client) but within an idle
 * limit; a stop closes the leg at once, since it carries no data yet. lib/ws answers the sender's
 * pings while the envelope is awaited.
 */
import { deadline, DeadlineError } from "../async.ts";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../observe/log.ts";
import { encodeHello } from "../tunnel/warm.ts";
import { describeClose } from "../ws/close.ts";
import type { MessageSocket, WsMessage } from "../ws/types.ts";

/** How long a held leg may wait for its envelope: 10 min, well past any relay's idle limit. */
export const WARM_IDLE_MS = 600_000;

export interface WarmHoldOptions {
  listenerId: string;
  /** What this listener grants, told in the hello. */
  features: readonly string[];
  /** Default WARM_IDLE_MS. */
  idleMs?: number;
  /** The listener is stopping: close the leg with 1001. */
  signal?: AbortSignal;
  /** The accept's logger (carries accept_id). */
  logger: Logger;
}

/** The first message (the envelope, handled as a cold one), or null when the leg ended. */
export async function holdWarmLeg(
  ws: MessageSocket,
  opts: WarmHoldOptions,
): Promise<WsMessage | null> {
  const log = opts.logger;
  const idleMs = opts.idleMs ?? WARM_IDLE_MS;
  try {
    await ws.send(encodeHello({ listener_id: opts.listenerId, features: [...opts.features] }));
  } catch (err) {
    log.debug("warm leg hello failed", { error: errorMessage(err) });
    ws.closeNow();
    return null;
  }
  log.debug("warm leg held", { idle_limit_ms: idleMs });
  const received = ws.receive();
  received.catch(() => {}); // the idle limit or the stop may win; this settles later
  let msg: WsMessage | null;
  try {
    msg = await deadline(received, idleMs, { signal: opts.signal });
  } catch (err) {
    await leave(ws, log, err, opts.signal);
    return null;
  }
  if (msg === null) {
    log.debug("warm leg closed by sender", { close: describeClose(ws.closeInfo) });
    await ws.close(1000, "done").catch(() => ws.closeNow());
    return null;
  }
  log.debug("warm leg used");
  return msg;
}

/** Ends a leg that got no envelope: idle (1000 "idle"), stop (1001), or a broken socket. */
async function leave(ws: MessageSocket, log: Logger, err: unknown, stop?: AbortSignal) {
  if (stop?.aborted) {
    log.debug("warm leg closed, listener stopping");
    await ws.close(1001, "shutting down").catch(() => ws.closeNow());
  } else if (err instanceof DeadlineError) {
    log.debug("warm leg idle-closed");
    await ws.close(1000, "idle").catch(() => ws.closeNow());
  } else {
    log.debug("warm leg failed", { error: errorMessage(err) });
    ws.closeNow();
  }
}
