/** Options of the local relay, their defaults and the parsers of their text forms. */
import { UsageError } from "../errors.ts";
import { type HostPort, parseHostPort } from "../net/host_port.ts";
import type { Logger } from "../observe/log.ts";
import type { PublicBase } from "./accept_message.ts";
import type { SasPolicy } from "./policy.ts";

export interface RelayServerOptions {
  /** `host:port` (`[::1]:8080`, `:8080` = all interfaces); port 0 picks a free one. */
  readonly bind?: string;
  /** PEM certificate chain and key: serve `wss://` (Deno.listenTls). */
  readonly tls?: RelayTls;
  /** Scheme and host put into accept addresses (`https://relay.example`); required off loopback. */
  readonly publicUrl?: string;
  /**
   * Host names a SAS `sr` may name besides the one a client reached us by (its Host header) and the
   * public URL's: the namespace host of clients pointed here from elsewhere (Arc's ARM answer).
   */
  readonly namespaceHosts?: readonly string[];
  /** Known hybrid connections; empty or absent = any name is accepted. */
  readonly hycos?: readonly string[];
  /** SAS policies; with none, only JWTs (if `entraJwtKey`) get in. */
  readonly policies?: readonly SasPolicy[];
  /** HS256 secret for Entra-style JWTs. */
  readonly entraJwtKey?: string;
  readonly maxListeners?: number;
  readonly rendezvousTimeoutMs?: number;
  /** One-way delay per hop: before each accept message, each rendezvous 101, each forwarded message. */
  readonly latencyMs?: number;
  readonly maxMessageSize?: number;
  /** In-flight bytes per bridge direction while latency is on. */
  readonly inFlightBytes?: number;
  /**
   * How long a bridged leg may stay half-closed (its peer's Close forwarded, its own not yet
   * received). Half-close over the closing handshake (azbridge, .NET) can last as long as a
   * download, so this is far longer than lib/ws's default close deadline.
   */
  readonly halfClosedTimeoutMs?: number;
  /** How long a listener's control channel outlives its token before it is closed with 1008. */
  readonly tokenGraceMs?: number;
  /**
   * `ws(s)://host:port` put into accept addresses instead of the relay's own address, bound as a
   * second listener that takes only rendezvous (accept) dials — like Azure's gateway hosts. Port 0
   * picks a free port. The scheme must match the main address (wss with `tls`).
   */
  readonly rendezvousUrl?: string;
  /** A bridged connection with no bytes received on either leg for this long is dropped (120 s). */
  readonly rendezvousIdleTimeoutMs?: number;
  /** Time between Pings on listeners' control channels (30 s). */
  readonly pingIntervalMs?: number;
  /** How long a listener may take to answer a Ping before it is dropped (10 s). */
  readonly pongTimeoutMs?: number;
  /** Connections allowed at once that have not finished their request head; more are closed. */
  readonly maxPendingHeads?: number;
  /** How long a connection may take to send its request head (10 s). */
  readonly headerTimeoutMs?: number;
  /** Aborting closes the server, like `close()`. */
  readonly signal?: AbortSignal;
  readonly logger?: Logger;
}

export interface RelayTls {
  readonly cert: string;
  readonly key: string;
  /** The files `cert` and `key` were read from, named in errors (`--tls-cert`, `--tls-key`). */
  readonly certFile?: string;
  readonly keyFile?: string;
}

export const DEFAULT_BIND = "127.0.0.1:8080";
export const DEFAULT_MAX_LISTENERS = 25;
export const DEFAULT_RENDEZVOUS_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024;
export const DEFAULT_HALF_CLOSED_TIMEOUT_MS = 60 * 60_000;
/** Real Azure pushes back on a non-reading peer at about 14–16 MiB (aztunnel's mock calibration). */
export const DEFAULT_IN_FLIGHT_BYTES = 12 * 1024 * 1024;
/** hyco-ws renews at the very second its token expires; Azure's own grace is unknown. */
export const DEFAULT_TOKEN_GRACE_MS = 60_000;
/** Azure drops rendezvous sockets idle for about 120 s (protocol notes §5). */
export const DEFAULT_RENDEZVOUS_IDLE_TIMEOUT_MS = 120_000;
/** Azure's own clients ping every 30 s and want the Pong within 10 s. */
export const DEFAULT_PING_INTERVAL_MS = 30_000;
export const DEFAULT_PONG_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_PENDING_HEADS = 1024;
export const DEFAULT_HEADER_TIMEOUT_MS = 10_000;

/** Parses `--bind` (lib/net's host:port; an empty host means all IPv4 interfaces). */
export function parseBind(text: string): HostPort {
  const hp = parseHostPort(text);
  // Whitespace was never a host name; refusing it keeps a typo a usage error.
  if (!hp || /\s/.test(hp.hostname)) {
    throw new UsageError(`invalid --bind "${text}": expected host:port`);
  }
  return { hostname: hp.hostname || "0.0.0.0", port: hp.port };
}

/** Parses `--public-url`: http/https/ws/wss, a host, nothing after it but `/`. */
export function parsePublicUrl(text: string): PublicBase {
  const fail = (why: string) => new UsageError(`invalid --public-url "${text}": ${why}`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw fail("not a URL");
  }
  const scheme = { "http:": "ws", "ws:": "ws", "https:": "wss", "wss:": "wss" }[url.protocol] as
    | "ws"
    | "wss"
    | undefined;
  if (!scheme) throw fail("the scheme must be http, https, ws or wss");
  if (url.host === "") throw fail("missing host");
  if (url.username || url.password) throw fail("user info is not allowed");
  if (url.pathname !== "/" && url.pathname !== "" || url.search || url.hash) {
    throw fail("only scheme and host[:port] are allowed");
  }
  return { scheme, host: url.host };
}

export interface RendezvousAddress {
  /** What to bind: hostname (no brackets) and port (0 = any). */
  readonly bind: HostPort;
  readonly scheme: "ws" | "wss";
}

/** Parses `--rendezvous-url`: `ws://` or `wss://` (matching `secure`), a host and a port, nothing else. */
export function parseRendezvousUrl(text: string, secure: boolean): RendezvousAddress {
  const fail = (why: string) => new UsageError(`invalid --rendezvous-url "${text}": ${why}`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw fail("not a URL");
  }
  const scheme = url.protocol === "ws:" ? "ws" : url.protocol === "wss:" ? "wss" : undefined;
  if (!scheme) throw fail("the scheme must be ws or wss");
  if (scheme !== (secure ? "wss" : "ws")) {
    throw fail(secure ? "use wss:// with --tls-cert" : "use ws:// (wss:// needs --tls-cert)");
  }
  if (url.hostname === "") throw fail("missing host");
  if (url.username || url.password) throw fail("user info is not allowed");
  if (url.pathname !== "/" && url.pathname !== "" || url.search || url.hash) {
    throw fail("only scheme and host[:port] are allowed");
  }
  // An explicit :80/:443 is dropped by URL; it is still the port to bind.
  const port = url.port === "" ? (scheme === "wss" ? 443 : 80) : Number(url.port);
  return { scheme, bind: { hostname: url.hostname.replace(/^\[|\]$/g, ""), port } };
}

/** Numbers that must be integers ≥ `min`. */
export function checkInteger(value: number, flag: string, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new UsageError(`invalid ${flag} "${value}": expected an integer >= ${min}`);
  }
  return value;
}
