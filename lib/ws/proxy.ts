/**
 * HTTP CONNECT proxy support with the conventions of Go's net/http (what Go aztunnel users have
 * configured): wss uses HTTPS_PROXY/https_proxy, ws uses HTTP_PROXY/http_proxy; NO_PROXY/no_proxy
 * lists hosts that bypass it; localhost and loopback addresses never use a proxy.
 */

import { encodeBase64 } from "../crypto/base64.ts";
import { encodeHead, parseResponseHead } from "../net/http_head.ts";
import { isLoopback } from "../net/loopback.ts";
import { writeAll } from "../net/write_all.ts";
import { joinHostPort } from "../net/host_port.ts";
import { BufferedConn } from "./io.ts";
import { WsError } from "./errors.ts";

export interface ProxyConfig {
  hostname: string;
  port: number;
  /** Value for Proxy-Authorization when the proxy URL carries credentials. */
  authorization: string | null;
}

export type EnvLookup = (name: string) => string | undefined;

/** Reads an environment variable; without --allow-env it is simply unset. */
export function denoEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** The proxy to use for a ws:// or wss:// URL, or null for a direct connection. */
export function proxyForUrl(url: URL, env: EnvLookup = denoEnv): ProxyConfig | null {
  const secure = url.protocol === "wss:";
  const raw = secure
    ? env("HTTPS_PROXY") || env("https_proxy")
    : env("HTTP_PROXY") || env("http_proxy");
  if (!raw) return null;
  const host = stripBrackets(url.hostname).toLowerCase();
  const port = url.port ? Number(url.port) : secure ? 443 : 80;
  if (isLoopback(host)) return null;
  if (noProxyMatches(env("NO_PROXY") || env("no_proxy") || "", host, port)) return null;
  return parseProxyUrl(raw);
}

/** Parses HTTPS_PROXY-style values: `http://user:pass@host:port` or a bare `host:port`. */
export function parseProxyUrl(raw: string): ProxyConfig {
  let url: URL;
  try {
    url = new URL(raw.includes("://") ? raw : `http://${raw}`);
  } catch {
    throw new WsError("connect_failed", "invalid proxy URL in environment");
  }
  if (url.protocol !== "http:") {
    throw new WsError("connect_failed", `unsupported proxy scheme ${url.protocol}`);
  }
  const authorization = url.username
    ? "Basic " +
      encodeBase64(
        new TextEncoder().encode(
          `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`,
        ),
      )
    : null;
  return {
    hostname: stripBrackets(url.hostname),
    port: url.port ? Number(url.port) : 80,
    authorization,
  };
}

/**
 * NO_PROXY matching as in Go: comma-separated entries; `*` matches everything; `example.com`
 * matches it and its subdomains; `.example.com` / `*.example.com` only subdomains; an entry may
 * carry `:port`; IP literals match exactly and IPv4 CIDR blocks (`10.0.0.0/8`) by prefix.
 */
export function noProxyMatches(noProxy: string, host: string, port: number): boolean {
  for (let entry of noProxy.split(",")) {
    entry = entry.trim().toLowerCase();
    if (entry === "") continue;
    if (entry === "*") return true;
    if (entry.includes("/")) {
      if (ipv4InCidr(host, entry)) return true;
      continue;
    }
    let entryHost = entry;
    let entryPort: number | null = null;
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
    if (m) {
      entryHost = m[1];
      entryPort = Number(m[2]);
    }
    entryHost = stripBrackets(entryHost);
    if (entryPort !== null && entryPort !== port) continue;
    if (entryHost.startsWith("*.")) entryHost = entryHost.slice(1);
    if (entryHost.startsWith(".")) {
      if (host.endsWith(entryHost)) return true;
    } else if (host === entryHost || host.endsWith("." + entryHost)) {
      return true;
    }
  }
  return false;
}

/**
 * Asks the proxy on `conn` for a tunnel to host:port. On success the conn carries the tunnel;
 * a refusal is a WsError "connect_failed" naming the proxy's status.
 */
export async function connectThroughProxy(
  conn: Deno.Conn,
  host: string,
  port: number,
  proxy: ProxyConfig,
): Promise<void> {
  const authority = joinHostPort(host, port);
  const headers: [string, string][] = [["Host", authority]];
  if (proxy.authorization) headers.push(["Proxy-Authorization", proxy.authorization]);
  // A small buffer: the proxy's answer head is all we read here.
  const io = new BufferedConn(conn, { maxSize: 16 * 1024 });
  await writeAll(conn, encodeHead(`CONNECT ${authority} HTTP/1.1`, headers));
  const head = await io.readHead(16 * 1024 - 4);
  if (head === null) throw new WsError("connect_failed", "proxy closed the connection");
  const res = parseResponseHead(head);
  if (res.status < 200 || res.status > 299) {
    throw new WsError(
      "connect_failed",
      `proxy refused CONNECT: ${res.status} ${res.statusText}`.trimEnd(),
    );
  }
  // Nothing may follow a CONNECT answer before we speak: the tunnel is ours from here on.
  if (io.buffered > 0) {
    throw new WsError("connect_failed", "proxy sent data after its CONNECT answer");
  }
}

function stripBrackets(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

function ipv4ToInt(ip: string): number | null {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(ip);
  if (!m) return null;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const part = Number(m[i]);
    if (part > 255) return null;
    n = n * 256 + part;
  }
  return n;
}

function ipv4InCidr(host: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split("/");
  const ip = ipv4ToInt(host);
  const net = ipv4ToInt(base);
  const bits = Number(bitsText);
  if (ip === null || net === null || !Number.isInteger(bits) || bits < 0 || bits > 32) return false;
  const size = 2 ** (32 - bits);
  return Math.floor(ip / size) === Math.floor(net / size);
}
