/**
 * Warm legs (issue 10): a sender opens rendezvous WebSockets ahead of demand, marked with the
 * WARM_LEG_HEADER request header, which the relay forwards in the accept's `connectHeaders`. A
 * listener that holds such a leg says so at once with one TEXT hello, then waits for the envelope;
 * a Go listener says nothing, so a sender pools only legs that said hello.
 */
import type { WsMessage } from "../ws/types.ts";

/** The request header marking a sender leg warm; matched case-insensitively, as HTTP names are. */
export const WARM_LEG_HEADER = "Aztunnel-Leg";
export const WARM_LEG_VALUE = "warm";
/** Feature: the listener holds warm legs and says hello on them. */
export const FEATURE_WARM = "warm";
/** Feature: the listener accepts BINARY data right after the envelope, before its answer. */
export const FEATURE_EARLY_DATA = "early-data";
/**
 * Feature: a warm leg may instead become a shared leg carrying many tunnels (lib/mux): the sender
 * sends MUX_START as its first message instead of an envelope; every stream then opens with its
 * own envelope, as a rendezvous socket would.
 */
export const FEATURE_MUX = "mux";
export const HELLO_VERSION = 1;
/** The sender's first message on a leg it shares: `{"version":1,"mux":"start"}`. */
export const MUX_START = JSON.stringify({ version: HELLO_VERSION, mux: "start" });

/** What a listener's hello tells the sender. */
export interface WarmHello {
  /** The listener's id, for the sender's logs; "" when the hello has none. */
  listener_id: string;
  /** What this listener grants on the leg (not yet intersected with the sender's offer). */
  features: string[];
}

/** True when the accept's connectHeaders carry `Aztunnel-Leg: warm` (name in any case). */
export function isWarmLeg(connectHeaders: Readonly<Record<string, string>> | undefined): boolean {
  if (!connectHeaders) return false;
  const name = WARM_LEG_HEADER.toLowerCase();
  return Object.entries(connectHeaders).some(([k, v]) =>
    k.toLowerCase() === name && v.trim() === WARM_LEG_VALUE
  );
}

/** The hello's exact bytes: `{"version":1,"hello":"warm","listener_id":…,"features":[…]}`. */
export function encodeHello(hello: WarmHello): string {
  return JSON.stringify({
    version: HELLO_VERSION,
    hello: WARM_LEG_VALUE,
    listener_id: hello.listener_id,
    features: hello.features,
  });
}

/**
 * The hello in `text`, or null when it is not one (not JSON, not an object, another version, no
 * `"hello":"warm"`, a field of the wrong type): a sender then treats the leg as not warm.
 */
export function decodeHello(text: string): WarmHello | null {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return null;
  const obj = raw as Record<string, unknown>;
  if (obj.version !== HELLO_VERSION || obj.hello !== WARM_LEG_VALUE) return null;
  const id = obj.listener_id ?? "";
  const features = obj.features ?? [];
  if (typeof id !== "string") return null;
  if (!Array.isArray(features) || !features.every((f) => typeof f === "string")) return null;
  return { listener_id: id, features };
}

/** True when `msg` is exactly MUX_START (TEXT). Anything else is read as an envelope. */
export function isMuxStart(msg: WsMessage): boolean {
  return msg.type === "text" && msg.data === MUX_START;
}
