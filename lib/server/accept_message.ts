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
  /** Header names as the sender wrote them; names not listed go out lowercased. */
  readonly rawHeaderNames?: readonly string[];
  readonly remote: { readonly hostname: string; readonly port: number };
}

/** Control messages must stay under .NET's 64 KiB receive buffer. */
export const MAX_CONTROL_MESSAGE = 64 * 1024;

/** Auth material never travels to the listener. */
const STRIPPED_HEADERS = new Set(["servicebusauthorization"]);

type AddressInput = Omit<AcceptMessageInput, "headers" | "rawHeaderNames" | "remote">;

/** The rendezvous address: the sender's path and application query, then action and id. */
export function acceptAddress(input: AddressInput): string {
  const appQuery = escapeUrlPart(applicationQuery(input.rawQuery), QUERY_KEEP);
  const query = `${appQuery ? appQuery + "&" : ""}sb-hc-action=accept&sb-hc-id=${
    encodeURIComponent(input.id)
  }`;
  return `${input.base.scheme}://${input.base.host}/$hc/${
    escapeUrlPart(input.rawPath, PATH_KEEP)
  }?${query}`;
}

/** What may stay as is in a path (RFC 3986 pchar and `/`, plus `%` of existing escapes). */
const PATH_KEEP = /[A-Za-z0-9\-._~!$&'()*+,;=:@/]/;
/** A query may also hold `?` (and `/`). */
const QUERY_KEEP = /[A-Za-z0-9\-._~!$&'()*+,;=:@/?]/;

/**
 * Percent-encodes what the sender sent raw but a URL cannot carry there — `#` would start a
 * fragment and cut off `sb-hc-action`/`sb-hc-id`, `?` in a path would start the query — keeping
 * existing `%XX` escapes. The text is latin1 (one char per request byte), so each char is a byte.
 */
export function escapeUrlPart(raw: string, keep: RegExp): string {
  let out = "";
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (keep.test(c) || (c === "%" && /^[0-9A-Fa-f]{2}$/.test(raw.slice(i + 1, i + 3)))) {
      out += c;
    } else {
      const code = c.charCodeAt(0) & 0xff;
      out += "%" + code.toString(16).toUpperCase().padStart(2, "0");
    }
  }
  return out;
}

/**
 * The sender's headers under the names it wrote (first spelling wins for a repeated name), with
 * repeated values comma-joined as `Headers` does; names lib/ws did not report raw stay lowercase.
 */
function connectHeaders(input: AcceptMessageInput): Record<string, string> {
  const spelled = new Map<string, string>();
  for (const raw of input.rawHeaderNames ?? []) {
    const key = raw.toLowerCase();
    if (!spelled.has(key)) spelled.set(key, raw);
  }
  const out: Record<string, string> = {};
  for (const [name, value] of input.headers) {
    if (!STRIPPED_HEADERS.has(name)) out[spelled.get(name) ?? name] = value;
  }
  return out;
}

/** The accept message as JSON text. */
export function buildAcceptMessage(input: AcceptMessageInput): string {
  return JSON.stringify({
    accept: {
      address: acceptAddress(input),
      id: input.id,
      connectHeaders: connectHeaders(input),
      remoteEndpoint: { address: input.remote.hostname, port: input.remote.port },
    },
  });
}
