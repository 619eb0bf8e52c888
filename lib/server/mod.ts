/**
 * `aztunnel relay-server`: a local relay speaking the Azure Relay Hybrid Connections WebSocket
 * protocol (hybrid-connections-protocol.md §8.5), over ws:// or wss://.
 */
import { AztunnelError, errorMessage, UsageError } from "../errors.ts";
import { formatDuration, MAX_DURATION_MS } from "../duration.ts";
import { getLogger } from "../observe/log.ts";
import { joinHostPort } from "../tunnel/ip.ts";
import { serveHttp } from "../ws/server.ts";
import {
  checkInteger,
  checkTls,
  DEFAULT_BIND,
  DEFAULT_HALF_CLOSED_TIMEOUT_MS,
  DEFAULT_HEADER_TIMEOUT_MS,
  DEFAULT_IN_FLIGHT_BYTES,
  DEFAULT_MAX_LISTENERS,
  DEFAULT_MAX_MESSAGE_SIZE,
  DEFAULT_MAX_PENDING_HEADS,
  DEFAULT_PING_INTERVAL_MS,
  DEFAULT_PONG_TIMEOUT_MS,
  DEFAULT_RENDEZVOUS_IDLE_TIMEOUT_MS,
  DEFAULT_RENDEZVOUS_TIMEOUT_MS,
  DEFAULT_TOKEN_GRACE_MS,
  isLoopback,
  parseBind,
  parsePublicUrl,
  parseRendezvousUrl,
  type RelayServerOptions,
} from "./options.ts";
import { ConnWatch } from "./conn_watch.ts";
import { hostKey } from "./auth.ts";
import type { PublicBase } from "./accept_message.ts";
import { Relay, type RelayStats } from "./relay.ts";

export type { RelayServerOptions, RelayTls } from "./options.ts";
export type { RelayStats } from "./relay.ts";
export {
  parseSasPolicy,
  parseSasPolicyFile,
  parseSasPolicyList,
  type PolicySources,
  resolvePolicies,
  type Right,
  type SasPolicy,
} from "./policy.ts";

export interface ConnectionStats {
  readonly pendingHeads: number;
  readonly refused: number;
}

export interface RelayServer {
  /** The address actually bound (port resolved when 0 was asked for). */
  readonly addr: Deno.NetAddr;
  /** What clients use as `--relay`: the public URL, else `ws(s)://host:port` of the bind. */
  readonly url: string;
  /** With `rendezvousUrl`: the address accept messages name (port resolved). */
  readonly rendezvousUrl?: string;
  /** Resolves once the server has stopped (after `close()` or the abort signal). */
  readonly finished: Promise<void>;
  /** Stops listening, closes control channels (1001), drops everything; resolves when all is released. */
  close(): Promise<void>;
  stats(): RelayStats;
  /** Connections still sending their request head, and those closed at once over the cap. */
  connectionStats(): ConnectionStats;
  /**
   * Closes every control channel with 1011 `NameRenewalFailed`, as Azure does daily, leaving
   * bridged connections alone: listeners must reconnect without dropping their tunnels.
   */
  recycleListeners(): number;
}

/**
 * Starts the relay. Throws UsageError for bad options (including a TLS certificate or key Deno
 * refuses), AztunnelError `listen_failed` naming the address when it cannot bind.
 */
export async function startRelayServer(opts: RelayServerOptions = {}): Promise<RelayServer> {
  const bindText = opts.bind ?? DEFAULT_BIND;
  const bind = parseBind(bindText);
  const publicBase = opts.publicUrl !== undefined ? parsePublicUrl(opts.publicUrl) : undefined;
  if (!publicBase && !isLoopback(bind.hostname)) {
    // Without it the accept address would come from a client's Host header: an SSRF lever.
    throw new UsageError(
      `--public-url is required when --bind is not a loopback address (${bindText})`,
    );
  }
  const maxListeners = checkInteger(
    opts.maxListeners ?? DEFAULT_MAX_LISTENERS,
    "--max-listeners",
    1,
  );
  const maxMessageSize = checkInteger(
    opts.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE,
    "--max-message-size",
    1,
  );
  const maxPendingHeads = checkInteger(
    opts.maxPendingHeads ?? DEFAULT_MAX_PENDING_HEADS,
    "maxPendingHeads",
    1,
  );
  const rendezvousTimeoutMs = opts.rendezvousTimeoutMs ?? DEFAULT_RENDEZVOUS_TIMEOUT_MS;
  const rendezvousIdleTimeoutMs = opts.rendezvousIdleTimeoutMs ??
    DEFAULT_RENDEZVOUS_IDLE_TIMEOUT_MS;
  const pingIntervalMs = opts.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
  const pongTimeoutMs = opts.pongTimeoutMs ?? DEFAULT_PONG_TIMEOUT_MS;
  const headerTimeoutMs = opts.headerTimeoutMs ?? DEFAULT_HEADER_TIMEOUT_MS;
  const positive = [
    ["--rendezvous-timeout", rendezvousTimeoutMs],
    ["--rendezvous-idle-timeout", rendezvousIdleTimeoutMs],
    ["pingIntervalMs", pingIntervalMs],
    ["pongTimeoutMs", pongTimeoutMs],
    ["headerTimeoutMs", headerTimeoutMs],
  ] as const;
  for (const [flag, ms] of positive) {
    if (!(ms > 0)) throw new UsageError(`${flag} must be positive`);
  }
  const latencyMs = opts.latencyMs ?? 0;
  if (!(latencyMs >= 0)) throw new UsageError("--latency must not be negative");
  // Above this setTimeout fires after 1 ms; the CLI's parseDuration already refuses such values.
  for (
    const [flag, ms] of [
      ...positive,
      ["--latency", latencyMs],
      ["halfClosedTimeoutMs", opts.halfClosedTimeoutMs ?? 0],
    ] as const
  ) {
    if (ms > MAX_DURATION_MS) {
      throw new UsageError(`${flag} must be at most ${formatDuration(MAX_DURATION_MS)}`);
    }
  }
  const hycos = [...new Set((opts.hycos ?? []).map((h) => h.replace(/^\/+|\/+$/g, "")))];
  if (hycos.some((h) => h === "")) throw new UsageError("--hyco must not be empty");

  if (opts.tls) checkTls(opts.tls);
  const secure = opts.tls !== undefined;
  const rendezvousAddr = opts.rendezvousUrl !== undefined
    ? parseRendezvousUrl(opts.rendezvousUrl, secure)
    : undefined;

  const log = opts.logger ?? getLogger();
  const listener = listenOn(bind.hostname, bind.port, bindText.trim(), opts.tls);
  let rendezvousListener: Deno.Listener | undefined;
  if (rendezvousAddr) {
    try {
      const { hostname, port } = rendezvousAddr.bind;
      rendezvousListener = listenOn(hostname, port, joinHostPort(hostname, port), opts.tls);
    } catch (err) {
      listener.close();
      throw err;
    }
  }
  const addr = listener.addr as Deno.NetAddr;
  // Keep a name the user bound to (a TLS certificate is more likely to carry `localhost`).
  const urlHost = /^[\d.]+$|:/.test(bind.hostname) ? addr.hostname : bind.hostname;
  const boundHost = joinHostPort(urlHost, addr.port);
  const url = publicBase
    ? `${publicBase.scheme}://${publicBase.host}`
    : `${secure ? "wss" : "ws"}://${boundHost}`;
  let rendezvousBase: PublicBase | undefined;
  if (rendezvousAddr && rendezvousListener) {
    const bound = rendezvousListener.addr as Deno.NetAddr;
    rendezvousBase = {
      scheme: rendezvousAddr.scheme,
      host: joinHostPort(rendezvousAddr.bind.hostname, bound.port),
    };
  }
  const watch = new ConnWatch({ maxPendingHeads, logger: log });

  const relay = new Relay({
    hycos,
    auth: { policies: opts.policies ?? [], jwtKey: opts.entraJwtKey },
    maxListeners,
    rendezvousTimeoutMs,
    latencyMs,
    maxMessageSize,
    inFlightBytes: opts.inFlightBytes ?? DEFAULT_IN_FLIGHT_BYTES,
    halfClosedTimeoutMs: opts.halfClosedTimeoutMs ?? DEFAULT_HALF_CLOSED_TIMEOUT_MS,
    tokenGraceMs: opts.tokenGraceMs ?? DEFAULT_TOKEN_GRACE_MS,
    publicBase,
    rendezvousBase,
    pingIntervalMs,
    pongTimeoutMs,
    rendezvousIdleTimeoutMs,
    namespaceHosts: (opts.namespaceHosts ?? []).map(hostKey),
    watch,
    secure,
    boundHost,
    logger: log,
  });
  const servers = [
    serveHttp({ listener: watch.wrap(listener), handler: relay.handle, secure, headerTimeoutMs }),
  ];
  if (rendezvousListener) {
    servers.push(serveHttp({
      listener: watch.wrap(rendezvousListener),
      handler: relay.handleRendezvous,
      secure,
      headerTimeoutMs,
    }));
  }
  const rendezvousUrl = rendezvousBase && `${rendezvousBase.scheme}://${rendezvousBase.host}`;
  log.info("relay-server listening", {
    addr: joinHostPort(addr.hostname, addr.port),
    url,
    ...(rendezvousUrl ? { rendezvous_url: rendezvousUrl } : {}),
  });

  let closing: Promise<void> | null = null;
  const { promise: finished, resolve: markFinished } = Promise.withResolvers<void>();
  const close = () => {
    closing ??= (async () => {
      opts.signal?.removeEventListener("abort", onAbort);
      await relay.shutdown();
      await Promise.all(servers.map((s) => s.close()));
      await relay.drained();
      log.info("relay-server stopped");
      markFinished();
    })();
    return closing;
  };
  const onAbort = () => void close();
  if (opts.signal?.aborted) await close();
  else opts.signal?.addEventListener("abort", onAbort, { once: true });

  return {
    addr,
    url,
    rendezvousUrl,
    finished,
    close,
    stats: () => relay.stats(),
    connectionStats: () => ({ pendingHeads: watch.pendingHeads, refused: watch.refused }),
    recycleListeners: () => relay.recycleListeners(),
  };
}

/** Binds plain TCP or TLS; a failure names the address (Deno's text does not). */
function listenOn(
  hostname: string,
  port: number,
  label: string,
  tls: RelayServerOptions["tls"],
): Deno.Listener {
  try {
    return tls
      ? Deno.listenTls({ hostname, port, cert: tls.cert, key: tls.key })
      : Deno.listen({ hostname, port });
  } catch (err) {
    throw new AztunnelError("listen_failed", `listen ${label}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
}
