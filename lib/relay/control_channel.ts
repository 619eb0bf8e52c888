/**
 * The listener control channel (aztunnel-reference.md §3.5): one WebSocket session at a time,
 * re-established with backoff forever (or, until one has connected, until a failure the caller
 * calls fatal). A session delivers `accept` commands, renews its token before expiry and pings the
 * relay so a dead channel is noticed within ping + pong time.
 */
import { delay } from "../async.ts";
import { AztunnelError, errorMessage } from "../errors.ts";
import { formatDuration } from "../duration.ts";
import type { Logger } from "../observe/log.ts";
import { connectWebSocket } from "../ws/client.ts";
import type { WebSocketConn } from "../ws/conn.ts";
import { WsHandshakeError } from "../ws/errors.ts";
import { describeClose } from "../ws/close.ts";
import { backoffDelay } from "./backoff.ts";
import {
  type AcceptAddressPolicy,
  acceptAddressPolicy,
  refuseAcceptAddress,
} from "./accept_address.ts";
import {
  type AcceptMessage,
  parseControlMessage,
  type RequestMessage,
  responseMessage,
} from "./control_message.ts";
import {
  authFailureMessage,
  describeDialFailure,
  errorSummary,
  isAuthStatus,
} from "./dial_error.ts";
import type { RelayEndpoint } from "./endpoint.ts";
import { newId } from "./ids.ts";
import { redact } from "./redact.ts";
import { answerRequestRendezvous } from "./rendezvous.ts";
import { renewLoop } from "./renew.ts";
import type { Token, TokenProvider } from "./token.ts";
import { listenUrl, relayUrl, resourceUri, withToken } from "./urls.ts";

export type { AcceptMessage } from "./control_message.ts";

export interface AcceptContext {
  /** Minted for this accept; already on `logger`. */
  readonly acceptId: string;
  /** The listener logger plus `control_session_id` and `accept_id`. */
  readonly logger: Logger;
  /** Aborts when the control session that delivered the accept ends. */
  readonly sessionSignal: AbortSignal;
}

export interface ControlChannelOptions {
  endpoint: RelayEndpoint;
  entity: string;
  tokens: TokenProvider;
  caCerts?: string[];
  /** Carries `listener_id`. */
  logger: Logger;
  /** Stops the channel: the session closes with 1000 and `runControlChannel` resolves. */
  signal: AbortSignal;
  /** Which accept addresses may be dialled; default the relay's own host and domain. */
  acceptPolicy?: AcceptAddressPolicy;
  /** Called synchronously per `accept` whose address passed `acceptPolicy`; dialling is up to the callee. */
  onAccept(accept: AcceptMessage, ctx: AcceptContext): void;
  onConnectedChange?(up: boolean): void;
  /**
   * Asked about each failure until a session has connected once; true stops the channel with that
   * error (a refusal no retry can fix). Once connected, every failure is retried.
   */
  fatalBeforeConnected?(err: ControlSessionError): boolean;
  /** Default 30 s. */
  pingIntervalMs?: number;
  /** Default 10 s. */
  pongTimeoutMs?: number;
  /** Renew this long before expiry; default max(5 min, 25 % of the token's lifetime). */
  renewBeforeMs?: number;
  /** Waits between renew attempts when fetching a token fails; default [5 s, 10 s]. */
  renewRetryDelaysMs?: readonly number[];
  /** Control upgrade deadline; default 30 s. */
  dialTimeoutMs?: number;
  /** Reconnect delay: base doubling to max (±20 % jitter); defaults 1 s and 30 s. */
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  /** A session connected at least this long resets the backoff; default 30 s. */
  reconnectResetMs?: number;
}

/** HTTP-mode requests get this answer: the listener only bridges WebSocket senders. */
export const HTTP_REQUEST_STATUS = 501;
export const HTTP_REQUEST_DESCRIPTION = "this listener serves only WebSocket tunnels";
const REQUEST_RENDEZVOUS_TIMEOUT_MS = 10_000;

/** `control_ended reason=` values. */
export type ControlEndReason =
  | "token_fetch_failed"
  | "auth_failed"
  | "dial_failed"
  | "read_failed"
  | "ping_failed"
  | "renew_failed"
  | "context_cancelled";

/** Why a control session failed; `code` is its `control_ended reason=`. */
export class ControlSessionError extends AztunnelError {
  declare readonly code: Exclude<ControlEndReason, "context_cancelled">;
  /** The message without its explanation (an Entra failure's credentials tried and fix). */
  readonly summary: string;
  /** The relay's HTTP answer when it refused the upgrade, and its reason phrase. */
  readonly status?: number;
  readonly statusText?: string;
  constructor(
    code: ControlSessionError["code"],
    message: string,
    opts: { summary?: string; status?: number; statusText?: string } = {},
  ) {
    super(code, message);
    this.name = "ControlSessionError";
    this.summary = opts.summary ?? errorSummary(message);
    this.status = opts.status;
    this.statusText = opts.statusText;
  }
}

/** A shutdown ends a session without an error. */
type SessionEnd = { readonly reason: "context_cancelled" } | ControlSessionError;

/**
 * Keeps the listener registered until `opts.signal` aborts. Rejects only with a failure
 * `opts.fatalBeforeConnected` called fatal.
 */
export async function runControlChannel(opts: ControlChannelOptions): Promise<void> {
  const backoff = {
    baseMs: opts.reconnectBaseMs ?? 1000,
    maxMs: opts.reconnectMaxMs ?? 30_000,
    jitter: 0.2,
  };
  const resetMs = opts.reconnectResetMs ?? 30_000;
  let failures = 0;
  // The listener retries forever (a missing role or `az login` never fixes itself quickly): the
  // full explanation goes out once per distinct error, on the WARN line since that level is the
  // one operators filter on; every other line, and every repeat, carries the short form.
  let explained: string | undefined;
  let connected = false;
  while (!opts.signal.aborted) {
    const { end, upMs } = await runSession(opts);
    if (opts.signal.aborted) return;
    connected ||= upMs !== null;
    if (!connected && end instanceof ControlSessionError && opts.fatalBeforeConnected?.(end)) {
      throw end;
    }
    if (upMs !== null && upMs >= resetMs) failures = 0;
    const waitMs = backoffDelay(failures++, backoff);
    const full = end instanceof ControlSessionError ? end.message : end.reason;
    // A session that got connected ends an incident: the next failure is explained afresh.
    const repeated = full === explained && upMs === null;
    explained = full;
    opts.logger.warn("control channel disconnected, reconnecting", {
      ...relayAttrs(opts),
      error: repeated && end instanceof ControlSessionError ? end.summary : full,
      delay: formatDuration(waitMs),
    });
    try {
      await delay(waitMs, { signal: opts.signal });
    } catch {
      return;
    }
  }
}

/** Which relay and hybrid connection a failure line is about. */
function relayAttrs(opts: ControlChannelOptions): { relay_url: string; hyco: string } {
  return { relay_url: relayUrl(opts.endpoint), hyco: opts.entity };
}

/**
 * One control session: token, upgrade, then serve until something ends it. `upMs` is how long it
 * was connected, null when it never was.
 */
async function runSession(
  opts: ControlChannelOptions,
): Promise<{ end: SessionEnd; upMs: number | null }> {
  const log = opts.logger.with({ control_session_id: newId() });
  const started = performance.now();
  const finish = (end: SessionEnd, upMs: number | null = null) => {
    const failed = end instanceof ControlSessionError;
    log.info("control_ended", {
      reason: failed ? end.code : end.reason,
      duration_seconds: Math.round(performance.now() - started) / 1000,
      ...(failed ? { ...relayAttrs(opts), error: end.summary } : {}),
    });
    return { end, upMs };
  };
  const resUri = resourceUri(opts.endpoint, opts.entity);

  let token: Token;
  try {
    token = await opts.tokens.getToken(resUri, opts.signal);
  } catch (err) {
    if (opts.signal.aborted) return finish(CANCELLED);
    return finish(
      new ControlSessionError(
        "token_fetch_failed",
        `get token: ${errorMessage(err)}`,
        { summary: `get token: ${errorSummary(err)}` },
      ),
    );
  }

  let conn: WebSocketConn;
  try {
    conn = await connectWebSocket(withToken(listenUrl(opts.endpoint, opts.entity), token.token), {
      caCerts: opts.caCerts,
      signal: opts.signal,
      timeoutMs: opts.dialTimeoutMs ?? 30_000,
    });
  } catch (err) {
    if (opts.signal.aborted) return finish(CANCELLED);
    // Azure refuses a 26th listener with 403 too; that is not a credentials problem.
    const answer = err instanceof WsHandshakeError
      ? { status: err.status, statusText: redact(err.statusText) }
      : {};
    const quota = /MaximumListenersPerEndpoint|quota/i.test(answer.statusText ?? "");
    if (answer.status !== undefined && isAuthStatus(answer.status) && !quota) {
      return finish(
        new ControlSessionError(
          "auth_failed",
          authFailureMessage(answer.status, opts.tokens.kind, "Listener"),
          answer,
        ),
      );
    }
    return finish(
      new ControlSessionError("dial_failed", `dial control: ${describeDialFailure(err)}`, answer),
    );
  }

  const connectedAt = performance.now();
  log.info("control_started", { relay_url: relayUrl(opts.endpoint), listener_name: opts.entity });
  opts.onConnectedChange?.(true);
  try {
    const end = await serveSession(conn, token, resUri, log, opts);
    return finish(end, performance.now() - connectedAt);
  } finally {
    opts.onConnectedChange?.(false);
  }
}

/** Runs the read, ping and renew loops over an open channel; resolves with the first cause. */
async function serveSession(
  conn: WebSocketConn,
  token: Token,
  resUri: string,
  log: Logger,
  opts: ControlChannelOptions,
): Promise<SessionEnd> {
  const session = new AbortController();
  let cause: SessionEnd | undefined;
  const end: End = (reason, error) => {
    if (cause) return;
    cause = reason === "context_cancelled"
      ? CANCELLED
      : new ControlSessionError(reason, error ?? reason);
    session.abort();
    // Say goodbye properly on shutdown or when the relay closed first; a broken channel is dropped.
    if (reason === "context_cancelled" || conn.closeInfo !== null) {
      conn.close(1000).catch(() => conn.closeNow());
    } else {
      conn.closeNow();
    }
  };
  const onShutdown = () => end("context_cancelled");
  opts.signal.addEventListener("abort", onShutdown, { once: true });
  if (opts.signal.aborted) onShutdown();

  const helpers = [
    pingLoop(conn, session.signal, opts, end),
    // Its failures are the channel's: they name the relay and hyco, as the reconnect WARN does.
    renewLoop(conn, token, session.signal, log.with(relayAttrs(opts)), {
      tokens: opts.tokens,
      resourceUri: resUri,
      renewBeforeMs: opts.renewBeforeMs,
      retryDelaysMs: opts.renewRetryDelaysMs,
    }).then((failure) => {
      if (failure !== null) end("renew_failed", failure.message);
    }),
  ];
  try {
    await readLoop({ conn, log, signal: session.signal, opts }, end);
  } finally {
    opts.signal.removeEventListener("abort", onShutdown);
    end("read_failed", "control session ended");
    await Promise.all(helpers);
    await conn.closed;
  }
  return cause!;
}

const CANCELLED: SessionEnd = { reason: "context_cancelled" };

/** Ends the session once, with `message` as its error (shutdown has none). */
type End = (reason: ControlEndReason, message?: string) => void;

/** An open control session as its read loop and message handlers see it. */
interface Session {
  readonly conn: WebSocketConn;
  /** The listener logger plus `control_session_id`. */
  readonly log: Logger;
  /** Aborts when the session ends. */
  readonly signal: AbortSignal;
  readonly opts: ControlChannelOptions;
}

async function readLoop(session: Session, end: End): Promise<void> {
  const { conn, log, signal, opts } = session;
  const policy = opts.acceptPolicy ?? acceptAddressPolicy(opts.endpoint);
  const answers = new Set<Promise<void>>();
  try {
    for (;;) {
      let msg;
      try {
        msg = await conn.receive();
      } catch (err) {
        end("read_failed", `read control: ${describeDialFailure(err)}`);
        return;
      }
      if (msg === null) {
        const info = conn.closeInfo;
        const detail = info ? ` (${describeClose(info, " ")})` : "";
        end("read_failed", `control channel closed by relay${detail}`);
        return;
      }
      if (signal.aborted) return;
      // Commands come only as TEXT: BINARY frames are HTTP request bodies, written by any sender.
      if (msg.type === "binary") {
        log.debug("binary control frame ignored", { bytes: msg.data.length });
        continue;
      }
      const parsed = parseControlMessage(msg.data);
      if (parsed.kind === "invalid") {
        log.warn("invalid control message", { ...relayAttrs(opts), error: parsed.error });
      } else if (parsed.kind === "request") {
        const answer = answerRequest(session, parsed.request, policy);
        if (answer) {
          answers.add(answer);
          answer.then(() => answers.delete(answer));
        }
      } else if (parsed.kind === "accept") {
        deliverAccept(session, parsed.accept, policy);
      }
    }
  } finally {
    await Promise.all([...answers]);
  }
}

function deliverAccept(
  { log, signal, opts }: Session,
  accept: AcceptMessage,
  policy: AcceptAddressPolicy,
): void {
  const acceptId = newId();
  const acceptLog = log.with({ accept_id: acceptId });
  acceptLog.info("accept_attempted");
  const refused = refuseAcceptAddress(accept.address, policy);
  if (refused !== null) {
    acceptLog.warn("accept_dropped", {
      reason: "address_refused",
      error: `accept address refused: ${refused}`,
    });
    return;
  }
  try {
    opts.onAccept(accept, { acceptId, logger: acceptLog, sessionSignal: signal });
  } catch (err) {
    acceptLog.error("accept handler failed", { error: errorMessage(err) });
  }
}

/**
 * Answers an HTTP-mode request with 501: on the control channel when the request came there
 * (its body frames are skipped as BINARY), else on its rendezvous. Returns the pending rendezvous.
 */
function answerRequest(
  { conn, log, signal, opts }: Session,
  request: RequestMessage,
  policy: AcceptAddressPolicy,
): Promise<void> | undefined {
  const reqLog = log.with({ request_id: request.id.slice(0, 100) });
  reqLog.info("http request refused", { status: HTTP_REQUEST_STATUS });
  const response = responseMessage(request.id, HTTP_REQUEST_STATUS, HTTP_REQUEST_DESCRIPTION);
  if (request.body !== undefined || request.address === undefined) {
    // The send is serialised with pings and renewals; a failure ends the read loop anyway.
    conn.send(response).catch(() => {});
    return undefined;
  }
  const refused = refuseAcceptAddress(request.address, policy);
  if (refused !== null) {
    reqLog.warn("request rendezvous refused", { error: `request address refused: ${refused}` });
    return undefined;
  }
  return answerRequestRendezvous(request.address, response, {
    caCerts: opts.caCerts,
    signal,
    timeoutMs: REQUEST_RENDEZVOUS_TIMEOUT_MS,
  }).catch((err) => reqLog.debug("request rendezvous failed", { error: errorMessage(err) }));
}

async function pingLoop(
  conn: WebSocketConn,
  signal: AbortSignal,
  opts: ControlChannelOptions,
  end: End,
): Promise<void> {
  const interval = opts.pingIntervalMs ?? 30_000;
  const timeout = opts.pongTimeoutMs ?? 10_000;
  for (;;) {
    try {
      await delay(interval, { signal });
    } catch {
      return;
    }
    try {
      await conn.ping(timeout);
    } catch (err) {
      if (!signal.aborted) end("ping_failed", `ping: ${errorMessage(err)}`);
      return;
    }
  }
}
