/** The byte stream under a client WebSocket: TCP to the host or its proxy, CONNECT, then TLS. */

import { errorMessage } from "../errors.ts";
import { connectCached, type DnsCache, sharedDnsCache } from "../net/dns_cache.ts";
import { WsError } from "./errors.ts";
import { connectThroughProxy, proxyForUrl } from "./proxy.ts";
import { redactUrl } from "./url.ts";

/** The handshake deadline as the transport sees it: a signal, and every conn it must close. */
export interface ConnTracker {
  readonly signal: AbortSignal;
  /** The conn now carrying the handshake; closed at once when the deadline already passed. */
  track(conn: Deno.Conn): void;
}

export interface TransportOptions {
  /** Extra trusted PEM CAs for wss:// (added to the system roots). */
  caCerts?: string[];
  proxy?: "env" | "none";
  /** Where host names connected recently (lib/net/dns_cache); null looks every name up. */
  dnsCache?: DnsCache | null;
}

export interface Transport {
  conn: Deno.Conn;
  /** The TCP peer: the proxy when there is one. */
  remoteAddr: Deno.NetAddr;
}

/** Opens the transport for a ws:// or wss:// URL; failures are WsError "connect_failed". */
export async function openTransport(
  target: URL,
  deadline: ConnTracker,
  opts: TransportOptions,
): Promise<Transport> {
  const where = redactUrl(target);
  const secure = target.protocol === "wss:";
  const host = target.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = target.port ? Number(target.port) : secure ? 443 : 80;
  const proxy = opts.proxy === "none" ? null : proxyForUrl(target);
  let tcp: Deno.TcpConn;
  try {
    tcp = await connectCached(opts.dnsCache === undefined ? sharedDnsCache : opts.dnsCache, {
      hostname: proxy?.hostname ?? host,
      port: proxy?.port ?? port,
      signal: deadline.signal,
    });
  } catch (err) {
    // Name the proxy when it is the one that failed: the relay host was never tried.
    const via = proxy ? ` through proxy ${proxy.hostname}:${proxy.port}` : "";
    throw new WsError("connect_failed", `cannot connect to ${where}${via}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  tcp.setNoDelay(true);
  deadline.track(tcp);
  if (proxy) await connectThroughProxy(tcp, host, port, proxy);
  if (!secure) return { conn: tcp, remoteAddr: tcp.remoteAddr };
  try {
    const tls = await Deno.startTls(tcp, { hostname: host, caCerts: opts.caCerts });
    deadline.track(tls);
    await tls.handshake();
    return { conn: tls, remoteAddr: tcp.remoteAddr };
  } catch (err) {
    throw new WsError("connect_failed", `TLS to ${where} failed: ${tlsFailure(err)}`, {
      cause: err,
    });
  }
}

/**
 * The TLS error, or what it means for the two mistakes rustls words least clearly: a server that
 * answered the ClientHello in plain text (a plain relay-server's 400, any HTTP server: "received
 * corrupt message of type InvalidContentType"), and a CA certificate served as the server's own.
 */
export function tlsFailure(err: unknown): string {
  const message = errorMessage(err);
  if (/InvalidContentType/i.test(message)) {
    return "the relay does not speak TLS (it answered in plain text): use ws:// instead of " +
      "wss://, or serve TLS (relay-server --tls-cert/--tls-key or --tls-self-signed)";
  }
  if (/CaUsedAsEndEntity/i.test(message)) {
    return "the relay serves a CA certificate as its own, which TLS clients refuse " +
      "(CaUsedAsEndEntity): it needs a certificate signed by that CA (relay-server " +
      "--tls-self-signed DIR makes both)";
  }
  return message;
}
