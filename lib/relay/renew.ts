/**
 * Token renewal on an open control channel (hybrid-connections-protocol.md §3.3). Fire-and-forget:
 * the relay answers a bad token by closing the channel, which the read loop reports.
 */
import { delay } from "../async.ts";
import { AztunnelError, errorCode, errorMessage } from "../errors.ts";
import type { Logger } from "../observe/log.ts";
import type { MessageSocket } from "../ws/types.ts";
import { renewTokenMessage } from "./control_message.ts";
import type { Token, TokenProvider } from "./token.ts";

const MIN_RENEW_DELAY_MS = 30_000;

/** A renewal that failed for good; `code` is the last attempt's `renew_failed code=`. */
export class RenewError extends AztunnelError {
  declare readonly code: "token_fetch_failed" | "auth_failed" | "connection_lost";
  constructor(code: RenewError["code"], message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.name = "RenewError";
  }
}

const defaultWait = (ms: number, signal: AbortSignal) => delay(ms, { signal });
const RENEW_MARGIN_MIN_MS = 5 * 60_000;

/**
 * How long to wait before renewing `token` (obtained at `obtainedAt`, epoch ms): until
 * expiresAt − max(5 min, 25 % of its lifetime) — 45 min for a 1 h SAS token, as in Go — but never
 * sooner than 30 s, so a provider handing out nearly expired tokens cannot make us spin.
 * An explicit `renewBeforeMs` replaces the margin and the floor.
 */
export function renewDelay(
  token: Token,
  obtainedAt: number,
  now: number,
  renewBeforeMs?: number,
): number {
  if (renewBeforeMs !== undefined) return Math.max(0, token.expiresAt - renewBeforeMs - now);
  const margin = Math.max(RENEW_MARGIN_MIN_MS, (token.expiresAt - obtainedAt) / 4);
  return Math.max(MIN_RENEW_DELAY_MS, token.expiresAt - margin - now);
}

export interface RenewOptions {
  tokens: TokenProvider;
  resourceUri: string;
  renewBeforeMs?: number;
  /** Waits before attempts 2, 3…; default [5 s, 10 s] (3 attempts, as in Go). */
  retryDelaysMs?: readonly number[];
  /** Clock (epoch ms) and timer; tests pass a fake pair to cover hours at once. */
  now?: () => number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/**
 * How long the renewed token must stay valid: past the current one's expiry by at least the
 * shortest renew delay. A caching provider (Entra) would otherwise hand back the very token the
 * relay already holds until its own refresh point, and the renewal would extend nothing.
 */
export function renewMinValidityMs(current: Token, now: number): number {
  return Math.max(0, current.expiresAt - now) + MIN_RENEW_DELAY_MS;
}

/**
 * Renews `first` and each successor before it expires until `signal` aborts (resolves null) or a
 * renewal fails for good (resolves its RenewError: the session must end).
 */
export async function renewLoop(
  socket: Pick<MessageSocket, "send">,
  first: Token,
  signal: AbortSignal,
  log: Logger,
  opts: RenewOptions,
): Promise<RenewError | null> {
  const now = opts.now ?? Date.now;
  const wait = opts.sleep ?? defaultWait;
  let current = first;
  let obtainedAt = now();
  for (;;) {
    try {
      await wait(renewDelay(current, obtainedAt, now(), opts.renewBeforeMs), signal);
    } catch {
      return null;
    }
    const next = await renewOnce(socket, current, signal, log, opts);
    if (next === null || next instanceof RenewError) return next;
    current = next;
    obtainedAt = now();
  }
}

/** One renewal: up to 3 token fetches, then `renewToken`. The new token, the failure, or null (stopped). */
export async function renewOnce(
  socket: Pick<MessageSocket, "send">,
  current: Token,
  signal: AbortSignal,
  log: Logger,
  opts: RenewOptions,
): Promise<Token | RenewError | null> {
  const delays = opts.retryDelaysMs ?? [5000, 10_000];
  const now = opts.now ?? Date.now;
  const wait = opts.sleep ?? defaultWait;
  for (let attempt = 1;; attempt++) {
    if (attempt > 1) {
      try {
        await wait(delays[attempt - 2], signal);
      } catch {
        return null;
      }
    }
    const t0 = performance.now();
    const elapsed = () => Math.round(performance.now() - t0);
    log.info("renew_attempted", {
      attempt,
      expires_in_seconds: Math.round((current.expiresAt - now()) / 1000),
    });
    let next: Token;
    try {
      next = await opts.tokens.getToken(opts.resourceUri, signal, {
        minValidityMs: renewMinValidityMs(current, now()),
      });
    } catch (err) {
      if (signal.aborted) {
        log.warn("renew_failed", {
          attempt,
          elapsed_ms: elapsed(),
          error: "control session ended",
          code: "context_cancelled",
        });
        return null;
      }
      const code = errorCode(err) === "auth_failed" ? "auth_failed" : "token_fetch_failed";
      const error = new RenewError(code, `get token: ${errorMessage(err)}`, { cause: err });
      log.warn("renew_failed", { attempt, elapsed_ms: elapsed(), error: error.message, code });
      if (attempt > delays.length) return error;
      continue;
    }
    try {
      await socket.send(renewTokenMessage(next.token));
    } catch (err) {
      if (signal.aborted) return null;
      const error = new RenewError("connection_lost", `send renewToken: ${errorMessage(err)}`, {
        cause: err,
      });
      log.warn("renew_failed", {
        attempt,
        elapsed_ms: elapsed(),
        error: error.message,
        code: error.code,
      });
      return error;
    }
    log.info("renew_ok", {
      attempt,
      new_expires_in_seconds: Math.round((next.expiresAt - now()) / 1000),
      elapsed_ms: elapsed(),
    });
    return next;
  }
}
