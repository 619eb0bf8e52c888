/**
 * The end of a successful rendezvous: both 101s go out together — the listener's with the
 * subprotocol it asked for, the sender's with the same one if it offered it — then the two legs are
 * bridged until both have closed.
 */
import type { Logger } from "../observe/log.ts";
import { tokenList } from "../net/http_head.ts";
import type { IncomingRequest } from "../ws/server.ts";
import { pause } from "../async.ts";
import { bridgeSockets, type Direction } from "./bridge.ts";

export interface JoinOptions {
  readonly maxMessageSize: number;
  readonly latencyMs: number;
  readonly inFlightBytes: number;
  readonly halfClosedTimeoutMs: number;
  /** Both legs are dropped when neither has received a byte (data, ping, pong) for this long. */
  readonly idleTimeoutMs: number;
  /** performance.now() of the last bytes received on either leg. */
  readonly lastActivity: () => number;
  /** Aborting drops both legs (server shutdown). */
  readonly signal: AbortSignal;
  readonly log: Logger;
  /** When the sender's request arrived (performance.now()), for `elapsed_ms`. */
  readonly started: number;
  /** Both upgrades have been answered (successfully or not). */
  readonly onUpgraded: () => void;
  readonly onBridge: (open: boolean) => void;
  readonly onForward: (dir: Direction, bytes: number) => void;
}

/** Upgrades both requests and bridges them; never rejects. */
export async function joinRendezvous(
  senderReq: IncomingRequest,
  listenerReq: IncomingRequest,
  opts: JoinOptions,
): Promise<void> {
  const { log, maxMessageSize } = opts;
  const closeTimeoutMs = opts.halfClosedTimeoutMs;
  // The listener picks among what the sender offered (the first, with hyco-ws and .NET).
  const listenerProtocol = tokenList(listenerReq.headers.get("sec-websocket-protocol"))[0];
  const senderOffered = tokenList(senderReq.headers.get("sec-websocket-protocol"));
  const senderProtocol = listenerProtocol !== undefined && senderOffered.includes(listenerProtocol)
    ? listenerProtocol
    : undefined;
  const [l, s] = await Promise.allSettled([
    listenerReq.upgrade({ protocol: listenerProtocol, maxMessageSize, closeTimeoutMs }),
    senderReq.upgrade({ protocol: senderProtocol, maxMessageSize, closeTimeoutMs }),
  ]);
  opts.onUpgraded();
  if (l.status === "rejected" || s.status === "rejected") {
    const reason = l.status === "rejected"
      ? "listener left during rendezvous"
      : "sender left during rendezvous";
    if (l.status === "fulfilled") await l.value.close(1011, reason).catch(() => {});
    if (s.status === "fulfilled") await s.value.close(1011, reason).catch(() => {});
    log.info("rendezvous failed", { reason });
    return;
  }
  log.info("rendezvous ok", { elapsed_ms: Math.round(performance.now() - opts.started) });
  opts.onBridge(true);
  const bridgeStart = performance.now();
  const idle = new AbortController();
  const watchdog = idleWatch(opts, idle);
  try {
    const res = await bridgeSockets(s.value, l.value, {
      latencyMs: opts.latencyMs,
      inFlightBytes: opts.inFlightBytes,
      signal: AbortSignal.any([opts.signal, idle.signal]),
      onForward: opts.onForward,
    });
    if (idle.signal.aborted && !opts.signal.aborted) {
      log.info("rendezvous idle timeout", { idle_timeout_ms: opts.idleTimeoutMs });
    }
    log.debug("bridge ended", {
      sender_to_listener: res.senderToListener,
      listener_to_sender: res.listenerToSender,
      sender_close: res.senderClose.code,
      listener_close: res.listenerClose.code,
      duration_ms: Math.round(performance.now() - bridgeStart),
    });
  } finally {
    idle.abort();
    await watchdog;
    opts.onBridge(false);
  }
}

/** Aborts `idle` once the legs have been silent for idleTimeoutMs (or when it is aborted). */
async function idleWatch(opts: JoinOptions, idle: AbortController): Promise<void> {
  const stop = AbortSignal.any([opts.signal, idle.signal]);
  while (!stop.aborted) {
    const wait = opts.lastActivity() + opts.idleTimeoutMs - performance.now();
    if (wait <= 0) {
      idle.abort();
      return;
    }
    await pause(wait, stop);
  }
}
