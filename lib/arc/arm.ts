/**
 * A minimal Azure Resource Manager client on fetch: bearer token, JSON in and out, azcore's retry
 * rule (408, 429, 5xx, network failures and tries that got no answer in time, honouring
 * Retry-After), and errors that carry the status and ARM's `error.code`/`error.message`.
 */
import { formatDuration } from "../duration.ts";
import { AztunnelError, errorMessage } from "../errors.ts";
import type { Logger } from "../observe/log.ts";
import type { Token } from "../relay/token.ts";
import { delay } from "../async.ts";
import { VERSION } from "../version.ts";
import { redactArc } from "./redact.ts";

export const ARM_API_VERSION = "2023-03-15";

/** Retries after the first attempt, as azcore's default policy (3). */
export const DEFAULT_ARM_RETRY_DELAYS_MS: readonly number[] = [800, 1600, 3200];
/**
 * One try, answer body included. azcore has no such limit, but a front end that accepts the TCP
 * connection and never answers would otherwise hang `arc connect` (an ssh ProxyCommand) for good.
 */
export const DEFAULT_ARM_TRY_TIMEOUT_MS = 30_000;
const MAX_RETRY_AFTER_MS = 60_000;
const RETRY_STATUSES = new Set([408, 429, 500, 502, 503, 504]);

export interface ArmTokenSource {
  get(signal?: AbortSignal): Promise<Token>;
}

export interface ArmClientOptions {
  endpoint: URL;
  tokens: ArmTokenSource;
  fetch?: typeof fetch;
  /** Waits before each retry; its length is the retry count. */
  retryDelaysMs?: readonly number[];
  /** Deadline of one try, from sending the request to the end of the answer; default 30 s. */
  tryTimeoutMs?: number;
  logger?: Logger;
}

/** ARM answered with a status >= 400. The message is the Go tool's `ARM API error (HTTP n): …`. */
export class ArmError extends AztunnelError {
  readonly status: number;
  /** ARM's `error.code` (e.g. `AuthorizationFailed`), "" when the body had none. */
  readonly armCode: string;
  readonly armMessage: string;
  constructor(status: number, armCode: string, armMessage: string, body: string) {
    const detail = armCode ? `${armCode}: ${armMessage}` : body.trim() || "(empty body)";
    super("arm_error", `ARM API error (HTTP ${status}): ${detail}`);
    this.name = "ArmError";
    this.status = status;
    this.armCode = armCode;
    this.armMessage = armMessage;
  }
}

export class ArmClient {
  readonly endpoint: URL;
  readonly #tokens: ArmTokenSource;
  readonly #fetch: typeof fetch;
  readonly #retryDelaysMs: readonly number[];
  readonly #tryTimeoutMs: number;
  readonly #logger: Logger | undefined;

  constructor(opts: ArmClientOptions) {
    this.endpoint = opts.endpoint;
    this.#tokens = opts.tokens;
    this.#fetch = opts.fetch ?? fetch;
    this.#retryDelaysMs = opts.retryDelaysMs ?? DEFAULT_ARM_RETRY_DELAYS_MS;
    this.#tryTimeoutMs = opts.tryTimeoutMs ?? DEFAULT_ARM_TRY_TIMEOUT_MS;
    this.#logger = opts.logger;
  }

  /** Sends one JSON request (`pathAndQuery` is absolute, e.g. `/subscriptions/…?api-version=…`). */
  async request(
    method: "GET" | "POST" | "PUT",
    pathAndQuery: string,
    body: unknown,
    signal?: AbortSignal,
  ): Promise<unknown> {
    const url = new URL(pathAndQuery, this.endpoint);
    for (let attempt = 0;; attempt++) {
      const { token } = await this.#tokens.get(signal);
      const timeout = new AbortController();
      const timer = setTimeout(() => timeout.abort(), this.#tryTimeoutMs);
      const trySignal = signal ? AbortSignal.any([signal, timeout.signal]) : timeout.signal;
      let res: Response;
      let text: string;
      try {
        res = await this.#fetch(url, {
          method,
          headers: {
            "Authorization": `Bearer ${token}`,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": `aztunnel/${VERSION}`,
          },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: trySignal,
        });
        text = await res.text();
      } catch (err) {
        signal?.throwIfAborted();
        const silent = timeout.signal.aborted;
        const why = silent
          ? `no answer within ${formatDuration(this.#tryTimeoutMs)}`
          : describeFetchFailure(err);
        if (attempt < this.#retryDelaysMs.length) {
          await this.#backoff(attempt, undefined, signal, why);
          continue;
        }
        if (silent) {
          throw new AztunnelError(
            "arm_timeout",
            `ARM at ${this.endpoint.origin} did not answer within ${
              formatDuration(this.#tryTimeoutMs)
            }`,
            { cause: err },
          );
        }
        throw new AztunnelError(
          "arm_unreachable",
          `cannot reach ARM at ${this.endpoint.origin}: ${why}`,
          { cause: err },
        );
      } finally {
        clearTimeout(timer);
      }
      if (res.ok) return text === "" ? {} : parseJson(text);
      if (RETRY_STATUSES.has(res.status) && attempt < this.#retryDelaysMs.length) {
        await this.#backoff(attempt, res.headers.get("retry-after"), signal, `HTTP ${res.status}`);
        continue;
      }
      const { code, message } = armErrorFields(text);
      throw new ArmError(res.status, code, redactArc(message), redactArc(text));
    }
  }

  async #backoff(
    attempt: number,
    retryAfter: string | null | undefined,
    signal: AbortSignal | undefined,
    why: string,
  ): Promise<void> {
    const ms = retryAfterMs(retryAfter) ?? this.#retryDelaysMs[attempt];
    this.#logger?.debug("ARM request failed (retrying)", { error: why, delay: `${ms}ms` });
    await delay(ms, { signal });
  }
}

/**
 * Why fetch failed, from the innermost cause: Deno's own message is only "fetch failed", and its
 * cause repeats the URL and hyper's layers ("error sending request for url (…): client error
 * (Connect): tcp connect error: …") around the part a user can act on.
 */
export function describeFetchFailure(err: unknown): string {
  let inner: unknown = err;
  while (inner instanceof Error && inner.cause !== undefined && inner.cause !== inner) {
    inner = inner.cause;
  }
  const text = errorMessage(inner) || errorMessage(err);
  if (/connection refused/i.test(text)) return "connection refused";
  const dns = /dns error: (?:failed to lookup address information: )?(.*)$/i.exec(text);
  if (dns) return `DNS name not found (${dns[1].replace(/\s*\(os error \d+\)$/, "")})`;
  if (/connection reset/i.test(text)) return "connection reset by peer";
  if (/timed out/i.test(text)) return "connection timed out";
  return text
    .replace(/^error sending request(?: for url)? \([^)]*\):\s*/i, "")
    .replace(/^client error \(\w+\):\s*/i, "")
    .replace(/\s*\(os error \d+\)$/, "");
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new AztunnelError("arm_bad_response", "ARM returned a body that is not JSON");
  }
}

/** ARM's error envelope `{"error":{"code","message"}}` (also accepted without the wrapper). */
function armErrorFields(text: string): { code: string; message: string } {
  try {
    const v = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } } & {
      code?: unknown;
      message?: unknown;
    };
    const e = v.error ?? v;
    return {
      code: typeof e.code === "string" ? e.code : "",
      message: typeof e.message === "string" ? e.message : "",
    };
  } catch {
    return { code: "", message: "" };
  }
}

/** Seconds or an HTTP date; undefined when absent, unparsable or longer than a minute. */
function retryAfterMs(value: string | null | undefined): number | undefined {
  if (!value) return undefined;
  const secs = Number(value);
  const ms = Number.isFinite(secs) ? secs * 1000 : Date.parse(value) - Date.now();
  if (!Number.isFinite(ms) || ms < 0 || ms > MAX_RETRY_AFTER_MS) return undefined;
  return ms;
}
