/**
 * The `accept` control message a listener receives for a waiting sender (protocol notes §3.2, §4.2):
 * `{"accept":{"address","id","connectHeaders","remoteEndpoint"}}`, in .NET's member order.
 */
import { applicationQuery } from "./route.ts";

export interface PublicBase {
  readonly scheme: "ws" | "wss";
  /** `host[:port]` as it goes into a URL (IPv6 in brackets). */
  readonly host: string;
}

export interface AcceptMessageInput {
  readonly base: PublicBase;
  /** The sender's path after `/$hc/`, as it sent it (percent-encoded). */
  readonly rawPath: string;
  /** The sender's raw query; `sb-hc-*` parameters are dropped, the rest passes through verbatim. */
  readonly rawQuery: string;
  readonly id: string;
  readonly headers: Headers;
  readonly remote: { readonly hostname: string; readonly port: number };
}

/** Control messages must stay under .NET's 64 KiB receive buffer. */
export const MAX_CONTROL_MESSAGE = 64 * 1024;

/** Auth material never travels to the listener. */
const STRIPPED_HEADERS = new Set(["servicebusauthorization"]);

/** The rendezvous address: the sender's path and application query, then action and id. */
export function acceptAddress(input: Omit<AcceptMessageInput, "headers" | "remote">): string {
  const appQuery = applicationQuery(input.rawQuery);
  const query = `${appQuery ? appQuery + "&" : ""}sb-hc-action=accept&sb-hc-id=${
    encodeURIComponent(input.id)
  }`;
  return `${input.base.scheme}://${input.base.host}/$hc/${input.rawPath}?${query}`;
}

/** The accept message as JSON text. */
export function buildAcceptMessage(input: AcceptMessageInput): string {
  const connectHeaders: Record<string, string> = {};
  // Headers iterates lower-cased names with repeated values comma-joined; every known client matches
  // header names case-insensitively.
  for (const [name, value] of input.headers) {
    if (!STRIPPED_HEADERS.has(name)) connectHeaders[name] = value;
  }
  return JSON.stringify({
    accept: {
      address: acceptAddress(input),
      id: input.id,
      connectHeaders,
      remoteEndpoint: { address: input.remote.hostname, port: input.remote.port },
    },
  });
}
