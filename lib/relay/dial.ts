/**
 * Sender rendezvous: one relay WebSocket per local connection, retried within a budget
 * (aztunnel-reference.md §3.7). The budget bounds only the dial: the returned socket outlives it,
 * so a slow dial can never kill a healthy tunnel later, and a late one never reaches a listener for
 * a client that already left.
 */
import { delay } from "../async.ts";
import { errorCode, errorMessage } from "../errors.ts";
import { formatDuration } from "../duration.ts";
import { getLogger, type Logger } from "../observe/log.ts";
import { connectWebSocket, type HeaderPairs } from "../ws/client.ts";
import type { WebSocketConn } from "../ws/conn.ts";
import { WsError, WsHandshakeError } from "../ws/errors.ts";
import { backoffDelay } from "./backoff.ts";
import {
  authFailureMessage,
  describeDialFailure,
  errorSummary,
  isAuthStatus,
  isNoResponse,
  RelayDialError,
} from "./dial_error.ts";
import type { RelayEndpoint } from "./endpoint.ts";
import type { TokenProvider } from "./token.ts";
import { connectUrl, resourceUri, withToken } from "./urls.ts";

export interface DialRelayOptions {
  endpoint: RelayEndpoint;
  entity: string;
  tokens: TokenProvider;
  caCerts?: string[];
  signal?: AbortSignal;
  logger?: Logger;
  /** Whole dial including retries; default (and for 0 or less) 30 s. */
  budgetMs?: number;
  /** One upgrade attempt; default (and for 0 or less) 10 s. */
  attemptTimeoutMs?: number;
  /** Sent with the names exactly as written. */
  headers?: HeaderPairs;
  /** First retry delay, doubling; default 1 s. */
  retryBaseMs?: number;
  /** Cap of the retry delay; default 5 s (so 1, 2, 4, 5, 5… s). */
  retryMaxMs?: number;
  /** Before each retry's delay: the attempts failed so far and the last failure (for feedback). */
  onRetry?(failed: number, error: unknown): void;
}

export const DEFAULT_DIAL_BUDGET_MS = 30_000;
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 10_000;

/**
 * Opens `wss://host/$hc/entity?sb-hc-action=connect&sb-hc-token=…` with a fresh token per attempt.
 * Retries 404 and 503 (no listener yet, relay busy) and upgrades that got no answer in time; fails
 * at once on anything else. Throws `RelayDialError`.
 */
export async function dialRelay(opts: DialRelayOptions): Promise<WebSocketConn> {
  const log = opts.logger ?? getLogger();
  // Zero or negative means "default", never "expire at once" (as in Go).
  const budgetMs = positiveOr(opts.budgetMs, DEFAULT_DIAL_BUDGET_MS);
  const attemptMs = positiveOr(opts.attemptTimeoutMs, DEFAULT_ATTEMPT_TIMEOUT_MS);
  const backoff = { baseMs: opts.retryBaseMs ?? 1000, maxMs: opts.retryMaxMs ?? 5000 };
  const resUri = resourceUri(opts.endpoint, opts.entity);
  const baseUrl = connectUrl(opts.endpoint, opts.entity);

  const deadline = performance.now() + budgetMs;
  const budget = new AbortController();
  const budgetTimer = setTimeout(() => budget.abort(), budgetMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, budget.signal]) : budget.signal;

  const timedOut = (last: unknown) =>
    new RelayDialError(
      "dial_timeout",
      `relay dial timed out after ${formatDuration(budgetMs)}${
        last === undefined ? "" : `: ${describeDialFailure(last)}`
      }${noListenerHint(last, opts.entity)}`,
      { cause: last },
    );
  const stopped = (last: unknown) =>
    opts.signal?.aborted
      ? new RelayDialError("aborted", "relay dial aborted", { cause: opts.signal.reason })
      : timedOut(last);

  log.debug("dialing relay", { entityPath: opts.entity });
  try {
    let last: unknown;
    for (let retry = 0;; retry++) {
      if (signal.aborted) throw stopped(last);
      let token: string;
      try {
        token = (await opts.tokens.getToken(resUri, signal)).token;
      } catch (err) {
        if (signal.aborted) throw stopped(last);
        throw new RelayDialError("relay_failed", `get token: ${errorMessage(err)}`, {
          cause: err,
          summary: `get token: ${errorSummary(err)}`,
        });
      }
      try {
        // lib/ws drops its abort listener once the handshake is over: the budget cannot reach the
        // established socket.
        const conn = await connectWebSocket(withToken(baseUrl, token), {
          caCerts: opts.caCerts,
          headers: opts.headers,
          signal,
          timeoutMs: Math.max(1, Math.min(attemptMs, deadline - performance.now())),
        });
        log.debug("relay connected", { entityPath: opts.entity });
        return conn;
      } catch (err) {
        if (signal.aborted) {
          throw stopped(err instanceof WsError && err.code === "aborted" ? last : err);
        }
        last = err;
        const fatal = classifyAttemptFailure(err, opts.tokens.kind);
        if (fatal) throw fatal;
        if (deadline - performance.now() <= 0) throw timedOut(err);
        const waitMs = backoffDelay(retry, backoff);
        log.warn("relay dial failed (retrying)", {
          status: err instanceof WsHandshakeError ? err.status : undefined,
          delay: formatDuration(waitMs),
          error: describeDialFailure(err),
        });
        opts.onRetry?.(retry + 1, err);
        try {
          await delay(waitMs, { signal });
        } catch {
          throw stopped(last);
        }
      }
    }
  } catch (err) {
    if (!(err instanceof RelayDialError && err.code === "aborted")) {
      // Short: every caller reports the error in full right after (connect's final error line,
      // port-forward's `forward failed`, socks5's `socks5 failed`).
      log.warn("relay dial failed", { code: errorCode(err), error: errorSummary(err) });
    }
    throw err;
  } finally {
    clearTimeout(budgetTimer);
  }
}

function positiveOr(value: number | undefined, fallback: number): number {
  return value !== undefined && value > 0 ? value : fallback;
}

/** The error to give up with, or undefined when the failure is worth another attempt. */
function classifyAttemptFailure(
  err: unknown,
  kind: TokenProvider["kind"],
): RelayDialError | undefined {
  if (err instanceof WsHandshakeError) {
    const answer = { cause: err, status: err.status, statusText: err.statusText };
    if (isAuthStatus(err.status)) {
      return new RelayDialError(
        "auth_failed",
        authFailureMessage(err.status, kind, "Sender"),
        answer,
      );
    }
    if (err.status === 404 || err.status === 503) return undefined;
    return new RelayDialError(
      "rejected",
      `relay rejected the connection: ${describeDialFailure(err)}`,
      answer,
    );
  }
  if (isNoResponse(err)) return undefined;
  return new RelayDialError("relay_failed", `dial relay: ${describeDialFailure(err)}`, {
    cause: err,
  });
}

/** After a budget spent on 404s, say what a 404 means here: nobody listens on that name. */
function noListenerHint(last: unknown, entity: string): string {
  if (!(last instanceof WsHandshakeError) || last.status !== 404) return "";
  return ` (no listener is connected to hybrid connection "${entity}": check --hyco and that ` +
    "relay-listener runs)";
}
