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
import { describeClose } from "../ws/close.ts";
import type { MessageSocket } from "../ws/types.ts";

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
  constructor(message: string, closeCode?: number, options?: ErrorOptions & { code?: string }) {
    super(options?.code ?? "envelope_failed", message, options);
    this.name = "EnvelopeExchangeError";
    this.closeCode = closeCode;
  }
}

/**
 * Opens a tunnel to `target` (`host:port`): the relay dial, then the envelope exchange. Throws
 * RelayDialError, EnvelopeRejected or EnvelopeExchangeError; the WebSocket is closed on every
 * failure.
 */
export async function openEnvelopeTunnel(
  target: string,
  opts: EnvelopeTunnelOptions,
): Promise<OpenedTunnel> {
  const bridgeId = newId();
  const log = opts.logger.with({ bridge_id: bridgeId });
  log.info("connection requested", { target });
  const offered = opts.features ?? FEATURES;

  const socket = await dialObserved(opts, log);

  let listenerId: string | undefined;
  try {
    const envelope = encodeEnvelope({
      version: ENVELOPE_VERSION,
      target,
      metadata: featuresMetadata(offered),
      bridge_id: bridgeId,
    });
    const text = await exchange(
      socket,
      envelope,
      opts.relay.replyTimeoutMs ?? DEFAULT_REPLY_TIMEOUT_MS,
      opts.signal,
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
      });
      throw rejected;
    }
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
      log.warn("envelope exchange failed", {
        target,
        error: err.message,
        listener_id: listenerId,
        close_code: err.closeCode,
      });
    }
    // An abrupt hang-up, like the Go sender's CloseNow.
    socket.closeNow();
    await socket.closed;
    throw err;
  }
}

/** The relay dial, with the observer's dial metrics (a stop is not a failure). */
async function dialObserved(opts: EnvelopeTunnelOptions, log: Logger): Promise<MessageSocket> {
  const started = performance.now();
  try {
    const socket = await dialRelay({
      endpoint: opts.relay.endpoint,
      entity: opts.relay.entity,
      tokens: opts.relay.tokens,
      caCerts: opts.relay.caCerts,
      signal: opts.signal,
      logger: log,
      budgetMs: opts.relay.dialBudgetMs,
      retryBaseMs: opts.relay.retryBaseMs,
    });
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
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<string> {
  const reply = sendAndReceive(ws, envelope);
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

async function sendAndReceive(ws: MessageSocket, envelope: string): Promise<string> {
  try {
    await ws.send(envelope);
  } catch (err) {
    throw new EnvelopeExchangeError(`write envelope: ${errorMessage(err)}`, undefined, {
      cause: err,
    });
  }
  let msg;
  try {
    msg = await ws.receive();
  } catch (err) {
    throw new EnvelopeExchangeError(
      `read response: ${errorMessage(err)}`,
      ws.closeInfo?.code ?? 1006,
      { cause: err },
    );
  }
  if (msg === null) {
    throw new EnvelopeExchangeError(
      `read response: websocket closed with code ${describeClose(ws.closeInfo)}`,
      ws.closeInfo?.code ?? 1005,
    );
  }
  return msg.type === "text" ? msg.data : new TextDecoder().decode(msg.data);
}
