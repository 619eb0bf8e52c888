/**
 * The end of a successful rendezvous: both 101s go out together — the listener's with the
 * subprotocol it asked for, the sender's with the same one if it offered it — then the two legs are
 * bridged until both have closed.
 */
import type { Logger } from "../observe/log.ts";
import { tokenList } from "../ws/http.ts";
import type { IncomingRequest } from "../ws/server.ts";
import { bridgeSockets, type Direction } from "./bridge.ts";

export interface JoinOptions {
  readonly maxMessageSize: number;
  readonly latencyMs: number;
  readonly inFlightBytes: number;
  readonly halfClosedTimeoutMs: number;
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
  try {
    const res = await bridgeSockets(s.value, l.value, {
      latencyMs: opts.latencyMs,
      inFlightBytes: opts.inFlightBytes,
      signal: opts.signal,
      onForward: opts.onForward,
    });
    log.debug("bridge ended", {
      sender_to_listener: res.senderToListener,
      listener_to_sender: res.listenerToSender,
      sender_close: res.senderClose.code,
      listener_close: res.listenerClose.code,
      duration_ms: Math.round(performance.now() - bridgeStart),
    });
  } finally {
    opts.onBridge(false);
  }
}
