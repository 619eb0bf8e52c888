/**
 * The sender's half of opening a tunnel: relay rendezvous dial, ConnectEnvelope out, one
 * ConnectResponse in (reference §2.2). Nothing is read from the local client until this succeeds.
 */
import { deadline } from "../async.ts";
import { formatDuration } from "../duration.ts";
import { AztunnelError, errorMessage } from "../errors.ts";
import type { Logger } from "../observe/log.ts";
import { dialRelay } from "../relay/dial.ts";
import { RelayDialError } from "../relay/dial_error.ts";
import type { RelayEndpoint } from "../relay/endpoint.ts";
import { newId } from "../relay/ids.ts";
import type { TokenProvider } from "../relay/token.ts";
import {
  type ConnectResponse,
  decodeResponse,
  encodeEnvelope,
  ENVELOPE_VERSION,
  FEATURES,
  featuresMetadata,
  negotiate,
} from "../tunnel/envelope.ts";
import type { TunnelObserver } from "../tunnel/observer.ts";
import { rejectHint } from "../tunnel/reject_hint.ts";
import { describeClose } from "../ws/close.ts";
import type { MessageSocket, WsMessage } from "../ws/types.ts";
import {
  listenerWaitMessage,
  noticeIfSlow,
  relayWaitMessage,
  WAIT_NOTICE_MS,
} from "./wait_notice.ts";

/** Where and how to reach the relay; shared by every sender mode. */
export interface SenderRelayConfig {
  endpoint: RelayEndpoint;
  entity: string;
  tokens: TokenProvider;
  caCerts?: string[];
  /** Relay dial budget including retries (default 30 s). */
  dialBudgetMs?: number;
  /** First retry delay of the relay dial (default 1 s); tests shorten it. */
  retryBaseMs?: number;
  /** How long the listener may take to answer the envelope (default 60 s). */
  replyTimeoutMs?: number;
  /** A relay dial or a listener's answer pending this long gets one WARN (default 5 s). */
  waitNoticeMs?: number;
}

/**
 * Longer than the listener's own deadline for the envelope and the target dial (--connect-timeout,
 * 30 s by default), so a slow but working listener still answers first; a listener that took the
 * rendezvous and then hung no longer holds the client forever (Go waits without a bound).
 */
export const DEFAULT_REPLY_TIMEOUT_MS = 60_000;

export interface EnvelopeTunnelOptions {
  relay: SenderRelayConfig;
  logger: Logger;
  signal?: AbortSignal;
  /** Features to offer (default: all this build implements). `[]` behaves like a Go sender. */
  features?: readonly string[];
  observer?: TunnelObserver;
}

export interface OpenedTunnel {
  socket: MessageSocket;
  /** The envelope's `host:port`. */
  target: string;
  /** Negotiated features (offered by us and answered by the listener). */
  features: string[];
  listenerId?: string;
  bridgeId: string;
  /** The caller's logger with `bridge_id`. */
  logger: Logger;
  /** Client bytes sent ahead of the answer (early data): the bridge's own count leaves them out. */
  earlyBytes?: number;
}

/** The listener answered `ok:false`. `code` is the listener's machine code or "". */
export class EnvelopeRejected extends AztunnelError {
  readonly reason: string;
  readonly listenerId?: string;
  constructor(code: string, reason: string, listenerId?: string) {
    super(
      code,
      code ? `connection rejected (${code}): ${reason}` : `connection rejected: ${reason}`,
    );
    this.name = "EnvelopeRejected";
    this.reason = reason;
    this.listenerId = listenerId;
  }
}

/**
 * Writing the envelope or reading/parsing the response failed (code `envelope_failed`), or no
 * response came in time (code `reply_timeout`).
 */
export class EnvelopeExchangeError extends AztunnelError {
  readonly closeCode?: number;
  /** The socket failed or closed before any answer: nothing was decided, a retry is safe. */
  readonly lost: boolean;
  constructor(
    message: string,
    closeCode?: number,
    options?: ErrorOptions & { code?: string; lost?: boolean },
  ) {
    super(options?.code ?? "envelope_failed", message, options);
    this.name = "EnvelopeExchangeError";
    this.closeCode = closeCode;
    this.lost = options?.lost ?? false;
  }
}

/** One client's tunnel request: its id, its logger and the features it offers. */
export interface TunnelRequest {
  target: string;
  bridgeId: string;
  /** The caller's logger with `bridge_id`. */
  log: Logger;
  offered: readonly string[];
}

/** Mints the request's bridge id and logs `connection requested`. */
export function requestTunnel(
  target: string,
  opts: Pick<EnvelopeTunnelOptions, "logger" | "features">,
): TunnelRequest {
  const bridgeId = newId();
  const log = opts.logger.with({ bridge_id: bridgeId });
  log.info("connection requested", { target });
  return { target, bridgeId, log, offered: opts.features ?? FEATURES };
}

/**
 * Opens a tunnel to `target` (`host:port`): the relay dial, then the envelope exchange. Throws
 * RelayDialError, EnvelopeRejected or EnvelopeExchangeError; the WebSocket is closed on every
 * failure.
 */
export function openEnvelopeTunnel(
  target: string,
  opts: EnvelopeTunnelOptions,
): Promise<OpenedTunnel> {
  return dialTunnel(requestTunnel(target, opts), opts);
}

/** `openEnvelopeTunnel` for a request already made (a retry keeps its bridge id). */
export async function dialTunnel(
  req: TunnelRequest,
  opts: EnvelopeTunnelOptions,
): Promise<OpenedTunnel> {
  const socket = await dialObserved(opts, req);
  return exchangeEnvelope(socket, req, opts, { reply: () => socket.receive() });
}

/** Client bytes sent between the envelope and the answer (lib/sender/early_data.ts). */
export interface EarlySender {
  /** Called right after the envelope went out. */
  start(socket: MessageSocket): void;
  /** The answer arrived (`ok`) or the exchange failed: resolves once no send is in flight. */
  settle(ok: boolean): Promise<void>;
}

/** How the answer is read on `socket`. */
export interface ExchangeLeg {
  /** The answer: the next message (a warm leg's pool has it pending since the hello). */
  reply(): Promise<WsMessage | null>;
  early?: EarlySender;
  /** A lost socket (see EnvelopeExchangeError.lost) is retried by the caller: DEBUG, not WARN. */
  quietLoss?: boolean;
}

/**
 * Sends the envelope on `socket` and reads the answer. Throws EnvelopeRejected or
 * EnvelopeExchangeError; the socket is dropped on every failure.
 */
export async function exchangeEnvelope(
  socket: MessageSocket,
  req: TunnelRequest,
  opts: EnvelopeTunnelOptions,
  leg: ExchangeLeg,
): Promise<OpenedTunnel> {
  const { target, bridgeId, log, offered } = req;
  let listenerId: string | undefined;
  let settled = false;
  try {
    const envelope = encodeEnvelope({
      version: ENVELOPE_VERSION,
      target,
      metadata: featuresMetadata(offered),
      bridge_id: bridgeId,
    });
    const text = await noticeIfSlow(
      exchange(
        socket,
        envelope,
        leg,
        opts.relay.replyTimeoutMs ?? DEFAULT_REPLY_TIMEOUT_MS,
        opts.signal,
      ),
      opts.relay.waitNoticeMs ?? WAIT_NOTICE_MS,
      () => log.warn(listenerWaitMessage(target), { target }),
    );
    let res: ConnectResponse;
    try {
      res = decodeResponse(text);
    } catch (err) {
      throw new EnvelopeExchangeError(`parse response: ${errorMessage(err)}`);
    }
    listenerId = res.listener_id;
    if (!res.ok) {
      const rejected = new EnvelopeRejected(res.code ?? "", res.error ?? "", listenerId);
      log.warn("listener refused connection", {
        target,
        error: rejected.message,
        listener_id: listenerId,
        code: res.code,
        hint: rejectHint(res.code),
      });
      throw rejected;
    }
    settled = true;
    await leg.early?.settle(true);
    log.info("listener accepted connection", { target, listener_id: listenerId });
    return {
      socket,
      target,
      features: negotiate(offered, res.features ?? []),
      listenerId,
      bridgeId,
      logger: log,
    };
  } catch (err) {
    if (err instanceof EnvelopeExchangeError && !opts.signal?.aborted) {
      const level = err.lost && leg.quietLoss ? "debug" : "warn";
      log[level]("envelope exchange failed", {
        target,
        error: err.message,
        listener_id: listenerId,
        close_code: err.closeCode,
      });
    }
    // An abrupt hang-up, like the Go sender's CloseNow.
    socket.closeNow();
    if (!settled) await leg.early?.settle(false);
    await socket.closed;
    throw err;
  }
}

/**
 * The relay dial, with the observer's dial metrics (a stop is not a failure) and one WARN when it
 * is still retrying after `waitNoticeMs`.
 */
async function dialObserved(
  opts: EnvelopeTunnelOptions,
  req: TunnelRequest,
): Promise<MessageSocket> {
  const { log, target } = req;
  const started = performance.now();
  let failed = 0;
  let last: unknown;
  try {
    const dial = dialRelay({
      endpoint: opts.relay.endpoint,
      entity: opts.relay.entity,
      tokens: opts.relay.tokens,
      caCerts: opts.relay.caCerts,
      signal: opts.signal,
      logger: log,
      budgetMs: opts.relay.dialBudgetMs,
      retryBaseMs: opts.relay.retryBaseMs,
      onRetry: (n, err) => {
        failed = n;
        last = err;
      },
    });
    const socket = await noticeIfSlow(
      dial,
      opts.relay.waitNoticeMs ?? WAIT_NOTICE_MS,
      () => log.warn(relayWaitMessage(failed, last), { target }),
    );
    opts.observer?.relayDialEnded?.();
    return socket;
  } catch (err) {
    if (!(err instanceof RelayDialError && err.code === "aborted")) {
      const timeout = err instanceof RelayDialError && err.code === "dial_timeout";
      opts.observer?.connectionError?.("sender", timeout ? "dial_timeout" : "relay_failed");
      opts.observer?.relayDialEnded?.(err);
    }
    throw err;
  } finally {
    opts.observer?.dialDuration?.("sender", performance.now() - started);
  }
}

/** Sends the envelope and returns the response text, within `timeoutMs` or until `signal`. */
function exchange(
  ws: MessageSocket,
  envelope: string,
  leg: ExchangeLeg,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<string> {
  const reply = sendAndReceive(ws, envelope, leg);
  // Given up on, it settles once the caller has closed the socket.
  reply.catch(() => {});
  return deadline(reply, timeoutMs, {
    signal,
    onTimeout: () =>
      new EnvelopeExchangeError(
        `no reply from listener within ${formatDuration(timeoutMs)}`,
        undefined,
        { code: "reply_timeout" },
      ),
  }).catch((err) => {
    if (signal?.aborted && err === signal.reason) {
      throw new EnvelopeExchangeError("envelope exchange aborted", undefined, { cause: err });
    }
    throw err;
  });
}

async function sendAndReceive(ws: MessageSocket, envelope: string, leg: ExchangeLeg) {
  try {
    await ws.send(envelope);
  } catch (err) {
    throw new EnvelopeExchangeError(`write envelope: ${errorMessage(err)}`, undefined, {
      cause: err,
      lost: true,
    });
  }
  leg.early?.start(ws);
  let msg;
  try {
    msg = await leg.reply();
  } catch (err) {
    throw new EnvelopeExchangeError(
      `read response: ${errorMessage(err)}`,
      ws.closeInfo?.code ?? 1006,
      { cause: err, lost: true },
    );
  }
  if (msg === null) {
    throw new EnvelopeExchangeError(
      `read response: websocket closed with code ${describeClose(ws.closeInfo)}`,
      ws.closeInfo?.code ?? 1005,
      { lost: true },
    );
  }
  return msg.type === "text" ? msg.data : new TextDecoder().decode(msg.data);
}
