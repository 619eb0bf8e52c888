/**
 * What a proxy request asks for: `CONNECT host:port` (a raw tunnel), or an absolute `http://` URL
 * (RFC 9112 §3.2.2), whose request is sent on in origin form with the hop-by-hop headers removed
 * and `Connection: close` added: one request per tunnel, so the response ends with the connection.
 */
import { encodeHead, type RequestHead, tokenList } from "../net/http_head.ts";
import { joinHostPort, parsePort, splitHostPort } from "../net/host_port.ts";
import { parseIPv6 } from "../tunnel/ip.ts";
import { HttpProxyError } from "./http_proxy_reply.ts";

export type ProxyRequest =
  | { kind: "connect"; target: string }
  /** `head` is the request as the target gets it. */
  | { kind: "forward"; target: string; head: Uint8Array };

/**
 * Hop-by-hop fields (RFC 9110 §7.6.1, plus the proxy's own credentials): never sent on.
 * Transfer-Encoding stays, since the body is relayed as it came.
 */
const HOP_BY_HOP = [
  "connection",
  "proxy-connection",
  "keep-alive",
  "proxy-authorization",
  "te",
  "upgrade",
];
/** Fields a `Connection` list cannot remove: the body's framing, and Host, which is rewritten. */
const KEPT = new Set(["content-length", "transfer-encoding", "host"]);

/** RFC 3986 reg-name characters (IP literals aside). */
const REG_NAME = /^[A-Za-z0-9\-._~%!$&'()*+,;=]+$/;
/** A request-target as it may appear on the wire: visible ASCII. */
const VISIBLE = /^[\x21-\x7e]+$/;

/** The request's target and, for a forward, the head to send; throws HttpProxyError (400, 405). */
export function interpretRequest(head: RequestHead): ProxyRequest {
  if (!VISIBLE.test(head.target)) throw badRequest("invalid request target");
  if (head.method === "CONNECT") {
    const hp = splitHostPort(head.target);
    const port = hp ? parsePort(hp.port) : null;
    if (!hp || port === null || !validHost(hp.host, head.target.startsWith("["))) {
      throw badRequest("CONNECT needs host:port");
    }
    return { kind: "connect", target: joinHostPort(hp.host, port) };
  }
  const url = parseHttpUrl(head.target);
  return { kind: "forward", target: url.target, head: forwardHead(head, url) };
}

/** An absolute `http://` request-target, split for the tunnel and the origin-form request. */
export interface HttpUrl {
  /** `host:port` for the envelope; the port defaults to 80. */
  target: string;
  /** The authority as written: the Host the target gets. */
  authority: string;
  /** Path and query as written ("" when the URL has none). */
  path: string;
}

/** Parses `http://authority[/path][?query]`; throws HttpProxyError (400, or 405 without a URL). */
export function parseHttpUrl(text: string): HttpUrl {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text);
  if (!scheme) {
    throw new HttpProxyError(405, "not_a_proxy_request", "only CONNECT or an absolute URL", [
      ["Allow", "CONNECT"],
    ]);
  }
  if (scheme[1].toLowerCase() !== "http") {
    throw badRequest(`${scheme[1]} URLs are not proxied: use CONNECT (an https proxy tunnel)`);
  }
  const rest = text.slice(scheme[0].length);
  const cut = rest.search(/[/?#]/);
  const authority = cut < 0 ? rest : rest.slice(0, cut);
  const path = (cut < 0 ? "" : rest.slice(cut)).replace(/#.*$/, "");
  if (authority.includes("@")) throw badRequest("credentials in the URL are not proxied");
  const bracketed = /^\[[^\]]*\]$/.test(authority);
  const hp = bracketed || !authority.includes(":")
    ? { host: bracketed ? authority.slice(1, -1) : authority, port: "" }
    : splitHostPort(authority);
  const port = hp?.port === "" ? 80 : parsePort(hp?.port ?? "");
  if (!hp || port === null || !validHost(hp.host, authority.startsWith("["))) {
    throw badRequest("invalid host in URL");
  }
  return { target: joinHostPort(hp.host, port), authority, path };
}

/**
 * The request line in origin form (`*` for `OPTIONS http://host`, RFC 9112 §3.2.4), Host from the
 * URL, the other fields without the hop-by-hop ones, and `Connection: close`.
 */
export function forwardHead(head: RequestHead, url: HttpUrl): Uint8Array {
  const path = url.path === "" ? (head.method === "OPTIONS" ? "*" : "/") : url.path;
  const origin = path.startsWith("?") ? `/${path}` : path;
  const dropped = new Set(HOP_BY_HOP);
  for (const name of tokenList(head.headers.get("connection"))) {
    if (!KEPT.has(name.toLowerCase())) dropped.add(name.toLowerCase());
  }
  const fields: [string, string][] = [["Host", url.authority]];
  for (const [name, value] of head.headers) {
    if (name !== "host" && !dropped.has(name)) fields.push([name, value]);
  }
  fields.push(["Connection", "close"]);
  return encodeHead(`${head.method} ${origin} ${head.version}`, fields);
}

/** An IPv6 literal when it was in brackets, else a name or IPv4 address. */
function validHost(host: string, bracketed: boolean): boolean {
  return bracketed ? parseIPv6(host) !== null : REG_NAME.test(host);
}

function badRequest(message: string): HttpProxyError {
  return new HttpProxyError(400, "bad_request", message);
}
