/**
 * `--relay` normalisation, compatible with the Go tool (aztunnel-reference.md §1.5), plus `ws://` for
 * local relays that serve plain WebSockets.
 */
import { UsageError } from "../errors.ts";

/** The public-cloud namespace suffix, used when `--relay-suffix` is empty. */
export const DEFAULT_RELAY_SUFFIX = ".servicebus.windows.net";

export interface RelayEndpoint {
  readonly scheme: "wss" | "ws";
  /** `host[:port]`; `:443` is dropped for wss (and `:80` for ws), so the SAS audience has no port. */
  readonly host: string;
}

const URI_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*$/;
const HOST_NAME = /^[A-Za-z0-9._~-]*[A-Za-z0-9][A-Za-z0-9._~-]*$/;
const IPV6_LITERAL = /^\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\]$/;
const PORT = /^[0-9]+$/;

/**
 * Parses a bare namespace name (gets `suffix`), an FQDN (used as is), or an `sb://`, `https://`,
 * `wss://` or `ws://` URI with an optional port and nothing after the host but an optional `/`.
 * Throws `UsageError('invalid relay endpoint: "X"')`.
 */
export function parseRelayEndpoint(value: string, suffix?: string): RelayEndpoint {
  const fail = () => new UsageError(`invalid relay endpoint: ${JSON.stringify(value)}`);
  const input = value.trim();
  const nsSuffix = suffix || DEFAULT_RELAY_SUFFIX;
  if (input === "") throw fail();

  const sep = input.indexOf("://");
  if (sep < 0) {
    // Bare host:port and bare IPv6 must use the URI form, as in Go.
    if (input.includes(":")) throw fail();
    const host = input.includes(".") ? input : input + nsSuffix;
    if (!HOST_NAME.test(host)) throw fail();
    return { scheme: "wss", host };
  }

  const scheme = input.slice(0, sep).toLowerCase();
  if (!URI_SCHEME.test(scheme)) throw fail();
  if (scheme !== "sb" && scheme !== "https" && scheme !== "wss" && scheme !== "ws") throw fail();
  const rest = input.slice(sep + 3);
  // Even an empty `?` or `#` is refused: the value names a namespace, never a resource.
  if (rest.includes("?") || rest.includes("#")) throw fail();
  const slash = rest.indexOf("/");
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  if (slash >= 0 && rest.slice(slash) !== "/") throw fail();
  if (authority.includes("@")) throw fail();

  const hostPort = splitAuthority(authority);
  if (!hostPort) throw fail();
  let { hostname, port } = hostPort;
  if (!IPV6_LITERAL.test(hostname) && !HOST_NAME.test(hostname)) throw fail();
  if (port !== undefined) {
    const n = Number(port);
    if (!PORT.test(port) || n < 1 || n > 65535) throw fail();
  }
  const defaultPort = scheme === "ws" ? "80" : scheme === "sb" ? undefined : "443";
  if (port !== undefined && port === defaultPort) port = undefined;
  // ws:// exists for local relays; a bare `ws://localhost` must not turn into an Azure namespace.
  if (port === undefined && scheme !== "ws" && !hostname.includes(".") && !hostname.includes(":")) {
    hostname += nsSuffix;
    if (!HOST_NAME.test(hostname)) throw fail();
  }
  return {
    scheme: scheme === "ws" ? "ws" : "wss",
    host: port === undefined ? hostname : `${hostname}:${port}`,
  };
}

/**
 * A URL authority's host and optional port. Unlike lib/net's splitHostPort (Go's, port required,
 * brackets removed) the port may be absent and an IPv6 literal keeps its brackets.
 */
function splitAuthority(authority: string): { hostname: string; port?: string } | null {
  if (authority.startsWith("[")) {
    const end = authority.indexOf("]");
    if (end < 0) return null;
    const after = authority.slice(end + 1);
    if (after !== "" && !after.startsWith(":")) return null;
    return {
      hostname: authority.slice(0, end + 1),
      port: after === "" ? undefined : after.slice(1),
    };
  }
  const colon = authority.indexOf(":");
  if (colon < 0) return { hostname: authority };
  return { hostname: authority.slice(0, colon), port: authority.slice(colon + 1) };
}
