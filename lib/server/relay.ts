/**
 * The relay's request handling: `/healthz`, and on `/$hc/{path}` the three WebSocket actions —
 * `listen` (control channel), `connect` (a sender, held until its listener dials back) and `accept`
 * (the listener's rendezvous dial, or its rejection).
 */
import { deadline, DeadlineError, pause } from "../async.ts";
import { joinHostPort } from "../net/host_port.ts";
import type { Logger } from "../observe/log.ts";
import { newId } from "../relay/ids.ts";
import type { WebSocketConn } from "../ws/conn.ts";
import { STATUS_TEXT } from "../net/http_head.ts";
import { isValidKey } from "../ws/keys.ts";
import type { IncomingRequest } from "../ws/server.ts";
import { buildAcceptMessage, MAX_CONTROL_MESSAGE, type PublicBase } from "./accept_message.ts";
import { type AuthConfig, authorize, extractToken, hostKey } from "./auth.ts";
import type { Direction } from "./bridge.ts";
import type { ConnWatch } from "./conn_watch.ts";
import { ListenerChannel } from "./listener_channel.ts";
import { joinRendezvous } from "./join.ts";
import { ListenerRegistry } from "./registry.ts";
import { newRendezvousId, RendezvousTable } from "./rendezvous.ts";
import { type HcTarget, longestNameMatch, nameKey, parseRoute } from "./route.ts";

export interface RelayInit {
  /** Configured HC names; empty = any name. */
  readonly hycos: readonly string[];
  readonly auth: AuthConfig;
  readonly maxListeners: number;
  readonly rendezvousTimeoutMs: number;
  readonly latencyMs: number;
  readonly maxMessageSize: number;
  readonly inFlightBytes: number;
  readonly halfClosedTimeoutMs: number;
  readonly tokenGraceMs: number;
  /** From `--public-url`; else accept addresses use the listener's Host header. */
  readonly publicBase?: PublicBase;
  /**
   * From `--rendezvous-url`: accept addresses point there, and accept dials are taken only there
   * (like Azure's gateway hosts), so a listener that dials its own relay host instead fails here too.
   */
  readonly rendezvousBase?: PublicBase;
  readonly pingIntervalMs: number;
  readonly pongTimeoutMs: number;
  readonly rendezvousIdleTimeoutMs: number;
  /** Extra host names a SAS `sr` may name (lower case). */
  readonly namespaceHosts: readonly string[];
  /** Raw header names and read times of accepted connections. */
  readonly watch: ConnWatch;
  readonly secure: boolean;
  /** `host:port` we are bound to, for listeners that sent no usable Host header. */
  readonly boundHost: string;
  readonly logger: Logger;
}

export interface RelayStats {
  /** Registered listeners per hybrid connection. */
  readonly listeners: Record<string, number>;
  /** Senders waiting for their listener to dial back. */
  readonly pendingRendezvous: number;
  /** Bridges currently open. */
  readonly bridgedConnections: number;
  /** Bridges opened since start. */
  readonly bridgedTotal: number;
  readonly bytesSenderToListener: number;
  readonly bytesListenerToSender: number;
}

type Outcome =
  | { readonly kind: "accept"; readonly req: IncomingRequest; readonly release: () => void }
  | { readonly kind: "reject"; readonly status: number; readonly description: string };

/** Listener sockets carry only small JSON control messages. */
const CONTROL_MAX_MESSAGE = 64 * 1024;
/** How long shutdown waits for listeners to answer our Close before dropping everything. */
const SHUTDOWN_GRACE_MS = 1_000;
const HOST_HEADER = /^(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;
/** Longest wait for one listener to take an accept message before the next one is tried. */
const DISPATCH_TIMEOUT_MS = 5_000;

export class Relay {
  readonly #cfg: RelayInit;
  readonly #log: Logger;
  readonly #registry: ListenerRegistry<ListenerChannel>;
  readonly #pending = new RendezvousTable<Outcome>();
  readonly #stop = new AbortController();
  /** Running control channels, including ones already out of the registry but still closing. */
  readonly #channels = new Set<ListenerChannel>();
  #bridged = 0;
  #bridgedTotal = 0;
  readonly #bytes: Record<Direction, number> = { senderToListener: 0, listenerToSender: 0 };

  constructor(cfg: RelayInit) {
    this.#cfg = cfg;
    this.#log = cfg.logger;
    this.#registry = new ListenerRegistry(cfg.maxListeners);
  }

  stats(): RelayStats {
    return {
      listeners: this.#registry.snapshot(),
      pendingRendezvous: this.#pending.size,
      bridgedConnections: this.#bridged,
      bridgedTotal: this.#bridgedTotal,
      bytesSenderToListener: this.#bytes.senderToListener,
      bytesListenerToSender: this.#bytes.listenerToSender,
    };
  }

  /** Stops new work: closes control channels (1001), fails waiting senders, drops bridges. */
  async shutdown(): Promise<void> {
    if (this.#stop.signal.aborted) return;
    this.#stop.abort();
    const channels = [...this.#channels];
    for (const ch of channels) ch.end("shutdown", 1001, "relay server shutting down");
    const grace = new AbortController();
    await Promise.race([
      Promise.allSettled(channels.map((ch) => ch.done)),
      pause(SHUTDOWN_GRACE_MS, grace.signal),
    ]);
    grace.abort();
  }

  /**
   * Closes every listener's control channel the way Azure does every 24 h (1011
   * `NameRenewalFailed`), leaving established rendezvous alone. Returns how many were closed.
   */
  recycleListeners(): number {
    const channels = [...this.#channels];
    for (const ch of channels) ch.end("recycled", 1011, "NameRenewalFailed");
    return channels.length;
  }

  /** Resolves once every control channel task has finished (after the sockets are gone). */
  async drained(): Promise<void> {
    while (this.#channels.size > 0) {
      await Promise.allSettled([...this.#channels].map((c) => c.done));
    }
  }

  /** Requests on the main address. */
  handle = (req: IncomingRequest): Promise<void> => this.#handle(req, "main");

  /** Requests on the `--rendezvous-url` address: accept dials only. */
  handleRendezvous = (req: IncomingRequest): Promise<void> => this.#handle(req, "rendezvous");

  async #handle(req: IncomingRequest, via: "main" | "rendezvous"): Promise<void> {
    const route = parseRoute(req.target);
    if (route.kind === "healthz") {
      if (req.method !== "GET" && req.method !== "HEAD") {
        return await req.respond(405, { headers: { Allow: "GET, HEAD" } });
      }
      return await req.respond(200, { body: "ok" });
    }
    if (route.kind === "error") return await this.#refuse(req, route.status, route.reason);
    const t = route.target;
    if (!req.isWebSocketUpgrade) {
      return await this.#refuse(req, 400, "Bad Request: WebSocket upgrade required", t);
    }
    // What lib/ws checks at upgrade, checked before a listener is woken for a sender that cannot
    // be upgraded anyway.
    if (req.headers.get("sec-websocket-version") !== "13") {
      return await this.#refuse(req, 426, "Upgrade Required: unsupported WebSocket version", t, {
        "Sec-WebSocket-Version": "13",
      });
    }
    if (!isValidKey(req.headers.get("sec-websocket-key"))) {
      return await this.#refuse(req, 400, "Bad Request: invalid Sec-WebSocket-Key", t);
    }
    if (this.#stop.signal.aborted) {
      return await this.#refuse(req, 503, "Service Unavailable: relay shutting down", t);
    }
    const rendezvousOnly = this.#cfg.rendezvousBase !== undefined;
    if (rendezvousOnly && (via === "rendezvous") !== (t.action === "accept")) {
      const reason = via === "rendezvous"
        ? "Endpoint does not exist: this address takes rendezvous dials only"
        : "Endpoint does not exist: rendezvous dials go to the rendezvous address";
      return await this.#refuse(req, 404, reason, t);
    }
    if (t.action === "listen") return await this.#listen(req, t);
    if (t.action === "connect") return await this.#connect(req, t);
    return await this.#accept(req, t);
  }

  /** The longest configured HC name that `path` addresses (name or name/suffix). */
  #configuredHyco(path: string): string | undefined {
    return longestNameMatch(path, this.#cfg.hycos);
  }

  get #anyName(): boolean {
    return this.#cfg.hycos.length === 0;
  }

  async #listen(req: IncomingRequest, t: HcTarget): Promise<void> {
    let hyco = t.path;
    if (!this.#anyName) {
      const match = this.#configuredHyco(t.path);
      if (match === undefined || nameKey(match) !== nameKey(t.path)) {
        return await this.#refuse(req, 404, "Endpoint does not exist", t);
      }
      hyco = match;
    }
    const hosts = this.#relayHosts(req);
    const check = { right: "Listen", path: t.path, hosts } as const;
    const auth = await authorize(extractToken(req.headers, t.query), check, this.#cfg.auth);
    if (!auth.ok) return await this.#refuse(req, auth.status, auth.reason, t);
    // Our own id, not the listener's: `listener_id` in the listener's logs is a different value,
    // and a client-chosen id need be neither unique nor tidy. The client's, if any, is logged beside.
    const id = newId();
    const clientId = t.query.get("sb-hc-id");
    // Bounded: it is repeated on every line of the channel, and the client picks its length.
    const log = this.#log.with(
      clientId
        ? { hyco, registration_id: id, client_id: clientId.slice(0, 128) }
        : { hyco, registration_id: id },
    );
    const ch = new ListenerChannel({
      id,
      hyco,
      path: t.path,
      host: this.#listenerHost(req),
      expiresAt: auth.expiresAt,
      graceMs: this.#cfg.tokenGraceMs,
      logger: log,
      authorize: (token) => authorize(token, check, this.#cfg.auth),
      pingIntervalMs: this.#cfg.pingIntervalMs,
      pongTimeoutMs: this.#cfg.pongTimeoutMs,
    });
    if (!this.#registry.add(hyco, ch)) {
      return await this.#refuse(
        req,
        403,
        `Forbidden: MaximumListenersPerEndpoint: ${hyco} already has ${this.#cfg.maxListeners} listeners`,
        t,
      );
    }
    let conn: WebSocketConn;
    try {
      // No subprotocol and no extensions, whatever the listener offered.
      conn = await req.upgrade({ maxMessageSize: CONTROL_MAX_MESSAGE });
    } catch (err) {
      this.#registry.remove(hyco, ch);
      log.debug("listener upgrade failed", { error: err });
      return;
    }
    log.info("listener registered", {
      remote: remoteOf(req),
      principal: auth.principal,
      listeners: this.#registry.count(hyco),
    });
    // Runs in the background: the HTTP layer keeps the upgraded socket until it closes.
    this.#channels.add(ch);
    ch.start(conn, (why) => {
      this.#channels.delete(ch);
      this.#registry.remove(hyco, ch);
      log.info("listener unregistered", { reason: why, listeners: this.#registry.count(hyco) });
    });
    if (this.#stop.signal.aborted) ch.end("shutdown", 1001, "relay server shutting down");
  }

  async #connect(req: IncomingRequest, t: HcTarget): Promise<void> {
    let hyco: string | undefined;
    if (!this.#anyName) {
      hyco = this.#configuredHyco(t.path);
      if (hyco === undefined) return await this.#refuse(req, 404, "Endpoint does not exist", t);
    }
    const auth = await authorize(extractToken(req.headers, t.query), {
      right: "Send",
      path: t.path,
      hosts: this.#relayHosts(req),
    }, this.#cfg.auth);
    if (!auth.ok) return await this.#refuse(req, auth.status, auth.reason, t);
    hyco ??= this.#registry.matchListening(t.path);
    const noListener = "Endpoint does not exist: no listener is connected";
    if (hyco === undefined) return await this.#refuse(req, 404, noListener, t);

    const started = performance.now();
    // Everything, dispatch included, must be over by then: a stuck listener holds nobody longer.
    const deadlineAt = started + this.#cfg.rendezvousTimeoutMs;
    const id = newRendezvousId(t.query.get("sb-hc-id"));
    const log = this.#log.with({ hyco, rendezvous_id: id });
    const pending = this.#pending.create(id);
    await this.#delay();
    const chosen = await this.#dispatch(req, t, { hyco, id, deadlineAt, log });
    if (chosen === "too_large") {
      this.#pending.expire(id);
      return await this.#refuse(req, 431, "Request Header Fields Too Large", t);
    }
    if (!chosen) {
      this.#pending.expire(id);
      if (this.#stop.signal.aborted) return await this.#refuse(req, 503, "Service Unavailable", t);
      if (performance.now() >= deadlineAt) {
        return await this.#refuse(req, 504, "Gateway Timeout: no listener took the connection", t);
      }
      return await this.#refuse(req, 404, noListener, t);
    }
    log.debug("accept dispatched", { registration_id: chosen.id });
    const outcome = await this.#awaitOutcome(pending.outcome, id, deadlineAt);
    await this.#complete(req, outcome, { log, registrationId: chosen.id, started });
  }

  /**
   * Offers the accept message to the hyco's listeners in turn until one takes it: the listener
   * chosen, none (all tried, the deadline passed, or shutdown), or "too_large" for the message.
   */
  async #dispatch(
    req: IncomingRequest,
    t: HcTarget,
    d: { hyco: string; id: string; deadlineAt: number; log: Logger },
  ): Promise<ListenerChannel | "too_large" | undefined> {
    const tried = new Set<ListenerChannel>();
    const rawHeaderNames = this.#cfg.watch.info(req.remoteAddr)?.rawHeaderNames;
    while (!this.#stop.signal.aborted) {
      const ch = this.#registry.pick(d.hyco, tried);
      if (!ch) return undefined;
      tried.add(ch);
      const remaining = d.deadlineAt - performance.now();
      if (remaining <= 0) return undefined;
      const message = buildAcceptMessage({
        base: this.#cfg.rendezvousBase ?? this.#cfg.publicBase ??
          { scheme: this.#cfg.secure ? "wss" : "ws", host: ch.host },
        rawPath: t.rawPath,
        rawQuery: t.rawQuery,
        id: d.id,
        headers: req.headers,
        rawHeaderNames,
        remote: req.remoteAddr,
      });
      if (message.length > MAX_CONTROL_MESSAGE) return "too_large";
      const sent = await sendWithin(ch, message, Math.min(remaining, DISPATCH_TIMEOUT_MS));
      if (sent === "sent") return ch;
      d.log.debug("accept dispatch failed, trying the next listener", {
        registration_id: ch.id,
        error: sent === "timeout" ? "listener did not take the accept in time" : sent.error,
      });
    }
    return undefined;
  }

  /** Answers the sender after its listener's dial-back (or its absence): bridged, or refused. */
  async #complete(
    req: IncomingRequest,
    outcome: Outcome | "timeout" | "shutdown",
    { log, registrationId, started }: { log: Logger; registrationId: string; started: number },
  ): Promise<void> {
    if (outcome === "timeout" || outcome === "shutdown") {
      const [status, reason] = outcome === "timeout"
        ? [504, "Gateway Timeout: the listener did not accept in time"]
        : [503, "Service Unavailable: relay shutting down"];
      log.info("rendezvous failed", { status, reason, registration_id: registrationId });
      return await respondQuietly(req, status, reason);
    }
    if (outcome.kind === "reject") {
      await this.#delay();
      log.info("rendezvous failed", {
        status: outcome.status,
        reason: outcome.description,
        registration_id: registrationId,
      });
      return await respondQuietly(req, outcome.status, outcome.description);
    }
    try {
      await this.#delay();
      await joinRendezvous(req, outcome.req, {
        maxMessageSize: this.#cfg.maxMessageSize,
        latencyMs: this.#cfg.latencyMs,
        inFlightBytes: this.#cfg.inFlightBytes,
        halfClosedTimeoutMs: this.#cfg.halfClosedTimeoutMs,
        idleTimeoutMs: this.#cfg.rendezvousIdleTimeoutMs,
        lastActivity: () => this.#lastRead(req, outcome.req),
        signal: this.#stop.signal,
        log: log.with({ registration_id: registrationId }),
        started,
        onUpgraded: outcome.release,
        onBridge: (open) => {
          this.#bridged += open ? 1 : -1;
          if (open) this.#bridgedTotal++;
        },
        onForward: (dir, n) => this.#bytes[dir] += n,
      });
    } finally {
      // Whatever happened, the listener's accept request must not wait forever.
      outcome.release();
    }
  }

  /** Waits for the listener's dial-back; a late claim after the deadline can no longer win. */
  async #awaitOutcome(
    outcome: Promise<Outcome>,
    id: string,
    deadlineAt: number,
  ): Promise<Outcome | "timeout" | "shutdown"> {
    const timer = new AbortController();
    const fired = pause(
      Math.max(0, deadlineAt - performance.now()),
      AbortSignal.any([timer.signal, this.#stop.signal]),
    )
      .then(() => this.#stop.signal.aborted ? "shutdown" as const : "timeout" as const);
    const first = await Promise.race([outcome, fired]);
    timer.abort();
    if (typeof first !== "string") return first;
    // The id may have been claimed in the same tick: then the outcome is already there.
    if (this.#pending.expire(id)) return first;
    return await outcome;
  }

  async #accept(req: IncomingRequest, t: HcTarget): Promise<void> {
    const id = t.query.get("sb-hc-id") ?? "";
    // Only the prefixed names, as on Azure: `statusCode` is an application parameter there.
    const code = t.query.get("sb-hc-statusCode");
    if (code !== null) {
      const status = Number(code);
      if (!/^\d{3}$/.test(code) || status < 200 || status > 599) {
        return await this.#refuse(req, 400, "Bad Request: invalid sb-hc-statusCode", t);
      }
      const description = reasonPhrase(
        t.query.get("sb-hc-statusDescription") ?? STATUS_TEXT[status] ?? "",
      );
      if (!this.#pending.claim(id, { kind: "reject", status, description })) {
        return await this.#refuse(req, 403, "Forbidden: URL not valid", t);
      }
      // 410 is how a rejection reports success to the listener.
      return await respondQuietly(req, 410, "Gone");
    }
    const { promise, resolve } = Promise.withResolvers<void>();
    if (!this.#pending.claim(id, { kind: "accept", req, release: resolve })) {
      return await this.#refuse(req, 403, "Forbidden: URL not valid", t);
    }
    // The sender's handler answers this request; return only once it has (or the HTTP layer
    // would answer 500 for us).
    await promise;
  }

  /** The accept address host for a listener: its Host header when sane, else our bound address. */
  #listenerHost(req: IncomingRequest): string {
    const host = req.headers.get("host") ?? "";
    return HOST_HEADER.test(host) ? host : this.#cfg.boundHost;
  }

  /**
   * The names a SAS `sr` may carry as host: the one the client reached us by (Host header) and the
   * public URL's host — the local stand-ins for Azure's namespace host.
   */
  #relayHosts(req: IncomingRequest): Set<string> {
    const hosts = new Set<string>(this.#cfg.namespaceHosts);
    for (const host of [req.headers.get("host"), this.#cfg.publicBase?.host]) {
      const name = host ? hostnameOf(host) : undefined;
      if (name !== undefined) hosts.add(name);
    }
    return hosts;
  }

  /** When either leg of a rendezvous last received bytes. */
  #lastRead(a: IncomingRequest, b: IncomingRequest): number {
    const at = (r: IncomingRequest) =>
      this.#cfg.watch.info(r.remoteAddr)?.lastReadAt ?? performance.now();
    return Math.max(at(a), at(b));
  }

  async #delay(): Promise<void> {
    if (this.#cfg.latencyMs > 0) await pause(this.#cfg.latencyMs, this.#stop.signal);
  }

  async #refuse(
    req: IncomingRequest,
    status: number,
    reason: string,
    t?: HcTarget,
    headers?: Record<string, string>,
  ): Promise<void> {
    this.#log.info("request refused", {
      action: t?.action,
      path: t?.path,
      status,
      reason,
      remote: remoteOf(req),
    });
    await respondQuietly(req, status, reason, headers);
  }
}

/** A reason phrase safe for a status line: printable ASCII, bounded. */
export function reasonPhrase(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, "?").trim();
  return clean.length > 512 ? clean.slice(0, 512) : clean;
}

async function respondQuietly(
  req: IncomingRequest,
  status: number,
  reason: string,
  headers?: Record<string, string>,
): Promise<void> {
  const phrase = reasonPhrase(reason);
  await req.respond(status, { reason: phrase, headers, body: phrase + "\n" }).catch(() => {});
}

/**
 * Sends an accept message with a deadline: "timeout" when the listener did not take it in time (the
 * write goes on in the background and may still reach it; its dial-back then finds the id used).
 */
async function sendWithin(
  ch: ListenerChannel,
  message: string,
  timeoutMs: number,
): Promise<"sent" | "timeout" | { readonly error: unknown }> {
  try {
    await deadline(ch.send(message), timeoutMs);
    return "sent";
  } catch (error) {
    return error instanceof DeadlineError ? "timeout" : { error };
  }
}

/** The host name of a Host header value or URL host (lower case, no port, no brackets). */
function hostnameOf(host: string): string | undefined {
  try {
    return hostKey(new URL(`http://${host}`).hostname);
  } catch {
    return undefined;
  }
}

function remoteOf(req: IncomingRequest): string {
  return joinHostPort(req.remoteAddr.hostname, req.remoteAddr.port);
}
