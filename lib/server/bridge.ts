/**
 * Joins a sender leg and a listener leg: each message is forwarded with its type and boundaries,
 * and Close is forwarded transparently. When one leg's Close arrives, the same code and reason go to
 * the other leg (whose socket stays readable), and the other direction keeps flowing until that
 * leg's own Close comes back — so a half-close made with the closing handshake survives the relay.
 * A leg that drops without Close reaches the other as 1000 "peer connection lost": Go senders always
 * drop their socket at the end of a tunnel, and Go listeners treat anything but 1000 as an error.
 * Our own peers tell a cut from a normal end by the missing eof, not by the code.
 *
 * Backpressure: see lane.ts.
 */
import { errorCode } from "../errors.ts";
import type { CloseInfo, MessageSocket, WsMessage } from "../ws/types.ts";
import { DelayLane, DirectLane, type LaneItem } from "./lane.ts";

export type Direction = "senderToListener" | "listenerToSender";

export interface LegBridgeOptions {
  /** One-way delay added to every forwarded message and Close. */
  readonly latencyMs: number;
  /** In-flight byte budget per direction while latency is on. */
  readonly inFlightBytes: number;
  /** Aborting drops both legs at once. */
  readonly signal?: AbortSignal;
  /** Called for every forwarded message with its payload size. */
  readonly onForward?: (dir: Direction, bytes: number) => void;
}

export interface LegBridgeResult {
  readonly senderToListener: number;
  readonly listenerToSender: number;
  /** What each leg ended with (1006 when it dropped without Close). */
  readonly senderClose: CloseInfo;
  readonly listenerClose: CloseInfo;
}

/** Runs until both legs are closed; never rejects. */
export async function bridgeSockets(
  sender: MessageSocket,
  listener: MessageSocket,
  opts: LegBridgeOptions,
): Promise<LegBridgeResult> {
  const stop = new AbortController();
  const dropBoth = () => {
    stop.abort();
    sender.closeNow();
    listener.closeNow();
  };
  if (opts.signal?.aborted) dropBoth();
  opts.signal?.addEventListener("abort", dropBoth);
  try {
    const [s2l, l2s] = await Promise.all([
      pump(sender, listener, "senderToListener", opts, stop.signal),
      pump(listener, sender, "listenerToSender", opts, stop.signal),
    ]);
    return {
      senderToListener: s2l.bytes,
      listenerToSender: l2s.bytes,
      senderClose: s2l.sourceClose,
      listenerClose: l2s.sourceClose,
    };
  } finally {
    opts.signal?.removeEventListener("abort", dropBoth);
    stop.abort();
    sender.closeNow();
    listener.closeNow();
    await Promise.all([sender.closed, listener.closed]);
  }
}

/** The reason of the Close sent on a leg whose partner dropped without Close. */
const PEER_LOST_REASON = "peer connection lost";

/** The Close to send on the other leg for what ended `from`. */
export function forwardedClose(
  info: CloseInfo | null,
  err?: unknown,
): { code: number; reason: string } {
  const code = errorCode(err);
  if (code === "protocol_error") return { code: 1011, reason: "peer sent an invalid frame" };
  if (code === "message_too_big") return { code: 1011, reason: "peer sent a message too big" };
  // 1005/1006 may never go on the wire; the reason still tells a lost peer from a normal end.
  if (!info || info.code === 1006) return { code: 1000, reason: PEER_LOST_REASON };
  if (info.code === 1005) return { code: 1000, reason: info.reason };
  return { code: info.code, reason: info.reason };
}

async function pump(
  from: MessageSocket,
  to: MessageSocket,
  dir: Direction,
  opts: LegBridgeOptions,
  stop: AbortSignal,
): Promise<{ bytes: number; sourceClose: CloseInfo }> {
  let bytes = 0;
  let toDead = false;
  const deliver = async (item: LaneItem) => {
    if (item.kind === "close") {
      await closeLeg(to, item.code, item.reason);
      return;
    }
    if (toDead) return;
    try {
      await to.send(item.data);
      bytes += item.size;
      opts.onForward?.(dir, item.size);
    } catch {
      // The other leg is gone; its own pump notices and closes us. Keep draining this leg until
      // its Close so the closing handshake can complete.
      toDead = true;
    }
  };
  const lane = opts.latencyMs > 0
    ? new DelayLane(deliver, opts.latencyMs, opts.inFlightBytes, stop)
    : new DirectLane(deliver);
  let failure: unknown;
  const read = () =>
    from.receive().catch((err) => {
      failure = err;
      return null;
    });
  // One receive is always pending: once we have forwarded a Close to `from`, lib/ws drains (and
  // discards) whatever arrives while nobody is waiting, which would lose half-close data.
  let next = read();
  for (;;) {
    const msg: WsMessage | null = await next;
    if (msg === null) break;
    next = read();
    await lane.push({ kind: "data", data: msg.data, size: payloadSize(msg) });
    if (stop.aborted) break;
  }
  if (stop.aborted) await next;
  if (!stop.aborted) {
    await lane.push({ kind: "close", ...forwardedClose(from.closeInfo, failure) });
    await lane.finish();
  }
  return { bytes, sourceClose: from.closeInfo ?? { code: 1006, reason: "" } };
}

async function closeLeg(leg: MessageSocket, code: number, reason: string): Promise<void> {
  try {
    await leg.close(code, reason);
  } catch {
    // A code or reason the peer sent but we may not (e.g. 1015): close plainly instead.
    await leg.close(1000).catch(() => leg.closeNow());
  }
}

function payloadSize(msg: WsMessage): number {
  return msg.type === "binary" ? msg.data.length : utf8Length(msg.data);
}

/** UTF-8 byte length without encoding the string. */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}
