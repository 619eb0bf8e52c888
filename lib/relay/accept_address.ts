/**
 * Which rendezvous addresses a listener dials (issue 8 §2). An `accept` names a URL the listener
 * connects to from its own network, so only the relay's endpoint or its gateway hosts qualify: the
 * relay's own host, a host under the relay's domain (Azure hands out `g17-…-sb.servicebus.windows.net`
 * for `ns.servicebus.windows.net`), and hosts the operator names for a local relay.
 */
import { AztunnelError } from "../errors.ts";
import { DEFAULT_RELAY_SUFFIX, type RelayEndpoint } from "./endpoint.ts";

export interface AcceptAddressPolicy {
  readonly scheme: "wss" | "ws";
  /** The relay's host, lowercased, IPv6 in brackets. */
  readonly relayHost: string;
  /** The relay endpoint's port (443 / 80 when implicit). */
  readonly relayPort: string;
  /** `.example.com`: accepted hosts may end with it; null when the relay host has no domain. */
  readonly domain: string | null;
  /** Operator-named hosts; a null port accepts any port. */
  readonly extra: readonly { readonly host: string; readonly port: string | null }[];
}

const IP_LITERAL = /^(\[.*\]|\d+\.\d+\.\d+\.\d+)$/;

/** `host[:port]` split, the host normalised as URLs normalise it; null when it is not one. */
function splitAuthority(hostPort: string): { host: string; port: string | null } | null {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$/.exec(hostPort);
  if (!m) return null;
  let host: string;
  try {
    host = new URL(`ws://${m[1]}/`).hostname;
  } catch {
    return null;
  }
  const port = m[2] === undefined ? null : Number(m[2]);
  if (port !== null && (port < 1 || port > 65535)) return null;
  return { host, port: port === null ? null : String(port) };
}

/**
 * The relay's domain: the namespace suffix when the host ends with it, else the parent domain of a
 * custom host when that still has two labels (`relay.example.com` → `.example.com`).
 */
function relayDomain(host: string, suffix: string | undefined): string | null {
  if (IP_LITERAL.test(host)) return null;
  for (const s of [suffix, DEFAULT_RELAY_SUFFIX]) {
    if (!s) continue;
    const dotted = (s.startsWith(".") ? s : "." + s).toLowerCase();
    if (host.endsWith(dotted) && host.length > dotted.length) return dotted;
  }
  const dot = host.indexOf(".");
  if (dot < 0) return null;
  const parent = host.slice(dot);
  return parent.indexOf(".", 1) > 0 ? parent : null;
}

/** A `--relay-accept-host` value: `host` or `host:port`. Throws `AztunnelError('invalid_argument')`. */
export function parseAcceptHost(text: string): { host: string; port: string | null } {
  const parsed = splitAuthority(text.trim());
  if (!parsed) {
    throw new AztunnelError(
      "invalid_argument",
      `invalid accept host ${JSON.stringify(text)}: expected host or host:port`,
    );
  }
  return parsed;
}

export function acceptAddressPolicy(
  endpoint: RelayEndpoint,
  opts: { suffix?: string; extraHosts?: readonly string[] } = {},
): AcceptAddressPolicy {
  // parseRelayEndpoint validated the host, so it splits.
  const { host, port } = splitAuthority(endpoint.host)!;
  return {
    scheme: endpoint.scheme,
    relayHost: host,
    relayPort: port ?? (endpoint.scheme === "ws" ? "80" : "443"),
    domain: relayDomain(host, opts.suffix),
    extra: (opts.extraHosts ?? []).map(parseAcceptHost),
  };
}

/** Why `address` must not be dialled, or null when it may. Never throws. */
export function refuseAcceptAddress(address: string, policy: AcceptAddressPolicy): string | null {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    return "not a URL";
  }
  if (url.protocol !== "wss:" && url.protocol !== "ws:") {
    return `scheme ${url.protocol}// is not a WebSocket scheme`;
  }
  if (url.protocol === "ws:" && policy.scheme === "wss") {
    return "scheme ws:// is not allowed when the relay is wss:// (the tunnel would be unencrypted)";
  }
  if (url.username !== "" || url.password !== "") return "the address carries credentials";
  const host = url.hostname.toLowerCase();
  const port = url.port || (url.protocol === "ws:" ? "80" : "443");
  for (const e of policy.extra) {
    if (e.host === host && (e.port === null || e.port === port)) return null;
  }
  const relayHosted = host === policy.relayHost ||
    (policy.domain !== null && host.endsWith(policy.domain));
  if (!relayHosted) {
    return `host ${host} is neither the relay's host ${policy.relayHost}` +
      (policy.domain ? ` nor under ${policy.domain.slice(1)}` : "") +
      " (name it with --relay-accept-host if the relay hands it out)";
  }
  if (port !== policy.relayPort) {
    return `port ${port} is not the relay's port ${policy.relayPort}`;
  }
  return null;
}
