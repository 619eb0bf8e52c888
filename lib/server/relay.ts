/**
 * The relay's request handling: `/healthz`, and on `/$hc/{path}` the three WebSocket actions —
 * `listen` (control channel), `connect` (a sender, held until its listener dials back) and `accept`
 * (the listener's rendezvous dial, or its rejection).
 */
import type { Logger } from "../observe/log.ts";
import { newId } from "../relay/ids.ts";
import type { WebSocketConn } from "../ws/conn.ts";
import { STATUS_TEXT } from "../ws/http.ts";
import type { IncomingRequest } from "../ws/server.ts";
import { buildAcceptMessage, MAX_CONTROL_MESSAGE, type PublicBase } from "./accept_message.ts";
import { type AuthConfig, authorize, extractToken } from "./auth.ts";
import { type Direction, sleep } from "./bridge.ts";
import { ControlChannel } from "./control.ts";
import { joinRendezvous } from "./join.ts";
import { ListenerRegistry } from "./registry.ts";
import { newRendezvousId, RendezvousTable } from "./rendezvous.ts";
import { type HcTarget, longestNameMatch, nameKey, parseRoute } from "./route.ts";

export interface RelayConfig {
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

export class Relay {
  readonly #cfg: RelayConfig;
  readonly #log: Logger;
  readonly #registry: ListenerRegistry<ControlChannel>;
  readonly #pending = new RendezvousTable<Outcome>();
  readonly #stop = new AbortController();
  /** Running control channels, including ones already out of the registry but still closing. */
  readonly #channels = new Set<ControlChannel>();
  #bridged = 0;
  #bridgedTotal = 0;
  readonly #bytes: Record<Direction, number> = { senderToListener: 0, listenerToSender: 0 };

  constructor(cfg: RelayConfig) {
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
      sleep(SHUTDOWN_GRACE_MS, grace.signal),
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

  handle = async (req: IncomingRequest): Promise<void> => {
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
    if (this.#stop.signal.aborted) {
      return await this.#refuse(req, 503, "Service Unavailable: relay shutting down", t);
    }
    if (t.action === "listen") return await this.#listen(req, t);
    if (t.action === "connect") return await this.#connect(req, t);
    return await this.#accept(req, t);
  };

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
    const auth = await authorize(
      extractToken(req.headers, t.query),
      "Listen",
      t.path,
      this.#cfg.auth,
    );
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
    const ch = new ControlChannel({
      id,
      hyco,
      path: t.path,
      host: this.#listenerHost(req),
      expiresAt: auth.expiresAt,
      graceMs: this.#cfg.tokenGraceMs,
      logger: log,
      authorize: (token) => authorize(token, "Listen", t.path, this.#cfg.auth),
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
    const auth = await authorize(
      extractToken(req.headers, t.query),
      "Send",
      t.path,
      this.#cfg.auth,
    );
    if (!auth.ok) return await this.#refuse(req, auth.status, auth.reason, t);
    hyco ??= this.#registry.matchListening(t.path);
    const noListener = "Endpoint does not exist: no listener is connected";
    if (hyco === undefined) return await this.#refuse(req, 404, noListener, t);

    const started = performance.now();
    const id = newRendezvousId(t.query.get("sb-hc-id"));
    const log = this.#log.with({ hyco, rendezvous_id: id });
    const pending = this.#pending.create(id);
    const tried = new Set<ControlChannel>();
    let chosen: ControlChannel | undefined;
    await this.#delay();
    while (!this.#stop.signal.aborted) {
      const ch = this.#registry.pick(hyco, tried);
      if (!ch) break;
      tried.add(ch);
      const message = buildAcceptMessage({
        base: this.#cfg.publicBase ?? { scheme: this.#cfg.secure ? "wss" : "ws", host: ch.host },
        rawPath: t.rawPath,
        rawQuery: t.rawQuery,
        id,
        headers: req.headers,
        remote: req.remoteAddr,
      });
      if (message.length > MAX_CONTROL_MESSAGE) {
        this.#pending.expire(id);
        return await this.#refuse(req, 431, "Request Header Fields Too Large", t);
      }
      try {
        await ch.send(message);
        chosen = ch;
        break;
      } catch (err) {
        log.debug("accept dispatch failed, trying the next listener", {
          registration_id: ch.id,
          error: err,
        });
      }
    }
    if (!chosen) {
      this.#pending.expire(id);
      if (this.#stop.signal.aborted) return await this.#refuse(req, 503, "Service Unavailable", t);
      return await this.#refuse(req, 404, noListener, t);
    }
    log.debug("accept dispatched", { registration_id: chosen.id });

    const outcome = await this.#awaitOutcome(pending.outcome, id);
    if (outcome === "timeout" || outcome === "shutdown") {
      const [status, reason] = outcome === "timeout"
        ? [504, "Gateway Timeout: the listener did not accept in time"]
        : [503, "Service Unavailable: relay shutting down"];
      log.info("rendezvous failed", { status, reason, registration_id: chosen.id });
      return await respondQuietly(req, status, reason);
    }
    if (outcome.kind === "reject") {
      await this.#delay();
      log.info("rendezvous failed", {
        status: outcome.status,
        reason: outcome.description,
        registration_id: chosen.id,
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
        signal: this.#stop.signal,
        log: log.with({ registration_id: chosen.id }),
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
  ): Promise<Outcome | "timeout" | "shutdown"> {
    const timer = new AbortController();
    const fired = sleep(
      this.#cfg.rendezvousTimeoutMs,
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
    const code = t.query.get("sb-hc-statusCode") ?? t.query.get("statusCode");
    if (code !== null) {
      const status = Number(code);
      if (!/^\d{3}$/.test(code) || status < 200 || status > 599) {
        return await this.#refuse(req, 400, "Bad Request: invalid sb-hc-statusCode", t);
      }
      const description = reasonPhrase(
        t.query.get("sb-hc-statusDescription") ?? t.query.get("statusDescription") ??
          STATUS_TEXT[status] ?? "",
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

  async #delay(): Promise<void> {
    if (this.#cfg.latencyMs > 0) await sleep(this.#cfg.latencyMs, this.#stop.signal);
  }

  async #refuse(req: IncomingRequest, status: number, reason: string, t?: HcTarget): Promise<void> {
    this.#log.info("request refused", {
      action: t?.action,
      path: t?.path,
      status,
      reason,
      remote: remoteOf(req),
    });
    await respondQuietly(req, status, reason);
  }
}

/** A reason phrase safe for a status line: printable ASCII, bounded. */
export function reasonPhrase(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, "?").trim();
  return clean.length > 512 ? clean.slice(0, 512) : clean;
}

async function respondQuietly(req: IncomingRequest, status: number, reason: string): Promise<void> {
  const phrase = reasonPhrase(reason);
  await req.respond(status, { reason: phrase, body: phrase + "\n" }).catch(() => {});
}

function remoteOf(req: IncomingRequest): string {
  const a = req.remoteAddr;
  return a.hostname.includes(":") ? `[${a.hostname}]:${a.port}` : `${a.hostname}:${a.port}`;
}
