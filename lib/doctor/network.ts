/**
 * The doctor's network checks on the relay host: the name resolves (through the system resolver,
 * as the dial's connect does, so /etc/hosts and private DNS zones count), TCP reaches it (through
 * HTTPS_PROXY/HTTP_PROXY when one applies, as the dial goes) and TLS verifies its certificate.
 */
import { lookup } from "node:dns/promises";
import { closeQuietly } from "../async.ts";
import { errorCode, errorMessage } from "../errors.ts";
import { joinHostPort, splitHostPort } from "../net/host_port.ts";
import { isLoopback } from "../net/loopback.ts";
import type { RelayEndpoint } from "../relay/endpoint.ts";
import { parseIP } from "../tunnel/ip.ts";
import { connectThroughProxy, type ProxyConfig, proxyForUrl } from "../ws/proxy.ts";
import { type Check, fail, type Outcome, pass } from "./checks.ts";

export const DNS_CHECK = "relay name resolves";
export const TCP_CHECK = "TCP to relay";
export const TLS_CHECK = "TLS to relay";

/** The relay's host (no brackets) and port, as the dial connects to them. */
export interface RelayAddress {
  readonly hostname: string;
  readonly port: number;
  readonly secure: boolean;
}

export function relayAddress(ep: RelayEndpoint): RelayAddress {
  const secure = ep.scheme === "wss";
  const split = splitHostPort(ep.host);
  if (split) return { hostname: split.host, port: Number(split.port), secure };
  return { hostname: ep.host.replace(/^\[(.*)\]$/, "$1"), port: secure ? 443 : 80, secure };
}

export interface NetworkCheckOptions {
  address: RelayAddress;
  caCerts?: string[];
  /** The proxy the dial would use; default from the environment. */
  proxy?: ProxyConfig | null;
}

/** DNS, TCP and TLS, each needing the one before. */
export function networkChecks(opts: NetworkCheckOptions): Check[] {
  const { address } = opts;
  const url = new URL(
    `${address.secure ? "wss" : "ws"}://${joinHostPort(address.hostname, address.port)}`,
  );
  const proxy = opts.proxy === undefined ? proxyForUrl(url) : opts.proxy;
  return [
    { label: DNS_CHECK, run: () => resolveCheck(address.hostname) },
    { label: TCP_CHECK, needs: [DNS_CHECK], run: (signal) => tcpCheck(address, proxy, signal) },
    {
      label: TLS_CHECK,
      needs: [TCP_CHECK],
      run: (signal) => tlsCheck(address, proxy, opts.caCerts, signal),
    },
  ];
}

async function resolveCheck(hostname: string): Promise<Outcome> {
  if (parseIP(hostname)) return pass(`${hostname} is an IP address, nothing to resolve`);
  if (isLoopback(hostname)) return pass(`${hostname} is a loopback name, nothing to resolve`);
  try {
    const found = await lookup(hostname, { all: true });
    return pass(`${hostname} → ${found.map((a) => a.address).join(", ")}`);
  } catch (err) {
    const code = errorCode(err) ?? errorMessage(err);
    return fail(
      `${hostname} does not resolve (${code})`,
      "check --relay (a bare namespace name gets --relay-suffix, default .servicebus.windows.net) " +
        "and this machine's DNS (a private endpoint needs its privatelink zone)",
    );
  }
}

/** TCP to the relay, or to the proxy and through its CONNECT. */
async function openPath(
  address: RelayAddress,
  proxy: ProxyConfig | null,
  signal: AbortSignal,
): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({
    hostname: proxy?.hostname ?? address.hostname,
    port: proxy?.port ?? address.port,
    signal,
  });
  const onAbort = () => closeQuietly(conn);
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    if (proxy) await connectThroughProxy(conn, address.hostname, address.port, proxy);
    return conn;
  } catch (err) {
    closeQuietly(conn);
    throw err;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

async function tcpCheck(
  address: RelayAddress,
  proxy: ProxyConfig | null,
  signal: AbortSignal,
): Promise<Outcome> {
  const where = `${address.hostname}:${address.port}`;
  const via = proxy ? ` through proxy ${proxy.hostname}:${proxy.port}` : "";
  let conn: Deno.TcpConn;
  try {
    conn = await openPath(address, proxy, signal);
  } catch (err) {
    const refused = err instanceof Deno.errors.ConnectionRefused;
    return fail(
      `cannot connect to ${where}${via}: ${refused ? "connection refused" : errorMessage(err)}`,
      proxy
        ? "check the proxy (HTTPS_PROXY/HTTP_PROXY, NO_PROXY) and that it allows CONNECT to the relay"
        : `check the port in --relay and that a firewall lets this machine reach ${where}`,
    );
  }
  const peer = conn.remoteAddr;
  closeQuietly(conn);
  return pass(
    proxy ? `connected to ${where}${via}` : `connected to ${peer.hostname}:${peer.port}`,
  );
}

async function tlsCheck(
  address: RelayAddress,
  proxy: ProxyConfig | null,
  caCerts: string[] | undefined,
  signal: AbortSignal,
): Promise<Outcome> {
  if (!address.secure) return pass("plain ws:// (local relay), TLS skipped");
  const tcp = await openPath(address, proxy, signal);
  let tls: Deno.TlsConn | undefined;
  const onAbort = () => closeQuietly(tls ?? tcp);
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    tls = await Deno.startTls(tcp, { hostname: address.hostname, caCerts });
    await tls.handshake();
    return pass(`certificate of ${address.hostname} verified`);
  } catch (err) {
    const text = errorMessage(err);
    const untrusted = /UnknownIssuer|invalid peer certificate|certificate/i.test(text);
    return fail(
      `TLS handshake with ${address.hostname} failed: ${text}`,
      untrusted
        ? "pass the relay's CA with --relay-ca-cert (or AZTUNNEL_RELAY_CA_CERT)"
        : "check that the port in --relay serves TLS (a local ws:// relay needs ws:// in --relay)",
    );
  } finally {
    signal.removeEventListener("abort", onAbort);
    closeQuietly(tls ?? tcp);
  }
}
