/** Control-channel JSON (hybrid-connections-protocol.md §3.2–3.3), parsed without trusting it. */

export interface AcceptMessage {
  /** The rendezvous URL, dialled verbatim. */
  readonly address: string;
  /** The relay's id for this sender (opaque). */
  readonly id: string;
  /** The sender's upgrade headers, as the relay forwarded them. */
  readonly connectHeaders: Record<string, string>;
  readonly remoteEndpoint?: { readonly address: string; readonly port: number };
}

export type ControlMessage =
  | { readonly kind: "accept"; readonly accept: AcceptMessage }
  | { readonly kind: "ignored" } // valid JSON we do not act on (request, future commands)
  | { readonly kind: "invalid"; readonly error: string };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Classifies one control message; only `accept` is acted on, like the Go listener. */
export function parseControlMessage(text: string): ControlMessage {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch (err) {
    return { kind: "invalid", error: err instanceof Error ? err.message : String(err) };
  }
  if (msg === null) return { kind: "ignored" };
  if (!isRecord(msg)) return { kind: "invalid", error: "control message is not a JSON object" };
  const a = msg.accept;
  if (a === undefined || a === null) return { kind: "ignored" };
  if (!isRecord(a)) return { kind: "invalid", error: "accept is not a JSON object" };
  if (typeof a.address !== "string" || a.address === "") {
    return { kind: "invalid", error: "accept has no address" };
  }
  if (a.id !== undefined && typeof a.id !== "string") {
    return { kind: "invalid", error: "accept id is not a string" };
  }
  const connectHeaders: Record<string, string> = {};
  if (isRecord(a.connectHeaders)) {
    for (const [k, v] of Object.entries(a.connectHeaders)) {
      if (typeof v === "string") connectHeaders[k] = v;
    }
  }
  const re = a.remoteEndpoint;
  const remoteEndpoint = isRecord(re) && typeof re.address === "string" &&
      typeof re.port === "number"
    ? { address: re.address, port: re.port }
    : undefined;
  return {
    kind: "accept",
    accept: { address: a.address, id: a.id ?? "", connectHeaders, remoteEndpoint },
  };
}

/** `{"renewToken":{"token":"…"}}` */
export function renewTokenMessage(token: string): string {
  return JSON.stringify({ renewToken: { token } });
}
