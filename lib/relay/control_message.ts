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

/** An HTTP-mode request (protocol notes §6); only what answering it needs. */
export interface RequestMessage {
  readonly id: string;
  /** The rendezvous address; where the request waits when `body` is absent. */
  readonly address?: string;
  /** Present (true or false) when the request came on the control channel, its body in BINARY. */
  readonly body?: boolean;
}

export type ControlMessage =
  | { readonly kind: "accept"; readonly accept: AcceptMessage }
  | { readonly kind: "request"; readonly request: RequestMessage }
  | { readonly kind: "ignored" } // valid JSON we do not act on (future commands)
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
  if (msg.accept === undefined || msg.accept === null) return parseRequest(msg.request);
  const a = msg.accept;
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

function parseRequest(r: unknown): ControlMessage {
  if (r === undefined || r === null) return { kind: "ignored" };
  if (!isRecord(r)) return { kind: "invalid", error: "request is not a JSON object" };
  if (typeof r.id !== "string" || r.id === "") {
    return { kind: "invalid", error: "request has no id" };
  }
  if (r.address !== undefined && typeof r.address !== "string") {
    return { kind: "invalid", error: "request address is not a string" };
  }
  if (r.body !== undefined && typeof r.body !== "boolean") {
    return { kind: "invalid", error: "request body is not a boolean" };
  }
  return { kind: "request", request: { id: r.id, address: r.address, body: r.body } };
}

/** The bodiless HTTP response to request `requestId` (protocol notes §6). */
export function responseMessage(requestId: string, status: number, description: string): string {
  return JSON.stringify({
    response: {
      requestId,
      statusCode: status,
      statusDescription: description,
      responseHeaders: {},
      body: false,
    },
  });
}

/** `{"renewToken":{"token":"…"}}` */
export function renewTokenMessage(token: string): string {
  return JSON.stringify({ renewToken: { token } });
}
