/**
 * `aztunnel relay-server`: a local relay speaking the Azure Relay Hybrid Connections WebSocket
 * protocol (hybrid-connections-protocol.md §8.5), over ws:// or wss://.
 */
import { AztunnelError, errorMessage } from "../errors.ts";
import { type HostPort, joinHostPort } from "../net/host_port.ts";
import { getLogger, type Logger } from "../observe/log.ts";
import { serveHttp } from "../ws/server.ts";
import type { PublicBase } from "./accept_message.ts";
import { hostKey } from "./auth.ts";
import { ConnWatch } from "./conn_watch.ts";
import type { RelayServerOptions } from "./options.ts";
import { Relay, type RelayStats } from "./relay.ts";
import { resolveSettings, type ServerSettings } from "./settings.ts";

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
  const settings = resolveSettings(opts);
  const log = opts.logger ?? getLogger();
  const { main, rendezvous } = bindListeners(settings, opts.tls);
  const addr = main.addr as Deno.NetAddr;
  const { bind, secure, publicBase } = settings;
  // Keep a name the user bound to (a TLS certificate is more likely to carry `localhost`).
  const urlHost = /^[\d.]+$|:/.test(bind.hostname) ? addr.hostname : bind.hostname;
  const boundHost = joinHostPort(urlHost, addr.port);
  const url = publicBase
    ? `${publicBase.scheme}://${publicBase.host}`
    : `${secure ? "wss" : "ws"}://${boundHost}`;
  let rendezvousBase: PublicBase | undefined;
  if (settings.rendezvousAddr && rendezvous) {
    const bound = rendezvous.addr as Deno.NetAddr;
    rendezvousBase = {
      scheme: settings.rendezvousAddr.scheme,
      host: joinHostPort(settings.rendezvousAddr.bind.hostname, bound.port),
    };
  }
  const watch = new ConnWatch({ maxPendingHeads: settings.maxPendingHeads, logger: log });
  const relay = new Relay({
    ...settings,
    auth: { policies: opts.policies ?? [], jwtKey: opts.entraJwtKey },
    rendezvousBase,
    namespaceHosts: (opts.namespaceHosts ?? []).map(hostKey),
    watch,
    boundHost,
    logger: log,
  });
  const { headerTimeoutMs } = settings;
  const onTlsHandshake = secure ? undefined : tlsOnPlainReporter(log);
  const servers = [
    serveHttp({
      listener: watch.wrap(main),
      handler: relay.handle,
      secure,
      headerTimeoutMs,
      onTlsHandshake,
    }),
  ];
  if (rendezvous) {
    servers.push(serveHttp({
      listener: watch.wrap(rendezvous),
      handler: relay.handleRendezvous,
      secure,
      headerTimeoutMs,
      onTlsHandshake,
    }));
  }
  const rendezvousUrl = rendezvousBase && `${rendezvousBase.scheme}://${rendezvousBase.host}`;
  log.info("relay-server listening", {
    addr: joinHostPort(addr.hostname, addr.port),
    url,
    ...(rendezvousUrl ? { rendezvous_url: rendezvousUrl } : {}),
  });
  const { finished, close } = closer(relay, servers, log, opts.signal);
  if (opts.signal?.aborted) await close();
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

/**
 * A WARN for a TLS ClientHello on the plain relay (a client was given wss://): the first one and
 * then every 100th, so a scanner cannot flood the log.
 */
function tlsOnPlainReporter(log: Logger): (remote: Deno.NetAddr) => void {
  let seen = 0;
  return (remote) => {
    seen++;
    if (seen !== 1 && seen % 100 !== 0) return;
    log.warn(
      "TLS handshake on a plain ws:// relay: the client was given wss://; give it ws://, or serve " +
        "wss:// with --tls-cert/--tls-key or --tls-self-signed",
      { remote: joinHostPort(remote.hostname, remote.port), count: seen },
    );
  };
}

/** The main listener and, with `--rendezvous-url`, the rendezvous one (or neither). */
function bindListeners(
  settings: ServerSettings,
  tls: RelayServerOptions["tls"],
): { main: Deno.Listener; rendezvous?: Deno.Listener } {
  const main = listenOn(settings.bind, settings.bindText, tls);
  if (!settings.rendezvousAddr) return { main };
  const { bind } = settings.rendezvousAddr;
  try {
    return { main, rendezvous: listenOn(bind, joinHostPort(bind.hostname, bind.port), tls) };
  } catch (err) {
    main.close();
    throw err;
  }
}

/** `close()` runs once: relay shutdown, then the HTTP servers, then the drain; so does an abort. */
function closer(
  relay: Relay,
  servers: readonly { close(): Promise<void> }[],
  log: Logger,
  signal: AbortSignal | undefined,
): { finished: Promise<void>; close: () => Promise<void> } {
  let closing: Promise<void> | null = null;
  const { promise: finished, resolve: markFinished } = Promise.withResolvers<void>();
  const close = () => {
    closing ??= (async () => {
      signal?.removeEventListener("abort", onAbort);
      await relay.shutdown();
      await Promise.all(servers.map((s) => s.close()));
      await relay.drained();
      log.info("relay-server stopped");
      markFinished();
    })();
    return closing;
  };
  const onAbort = () => void close();
  if (!signal?.aborted) signal?.addEventListener("abort", onAbort, { once: true });
  return { finished, close };
}

/** Binds plain TCP or TLS; a failure names the address (Deno's text does not). */
function listenOn(
  { hostname, port }: HostPort,
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
