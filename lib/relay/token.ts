/**
 * Relay credentials behind one interface, so the control channel and the dialers never care whether
 * a token is a SAS signature or an Entra JWT.
 */
import { AztunnelError } from "../errors.ts";
import { createSasToken } from "./sas.ts";

export interface Token {
  /** What goes into `sb-hc-token` and `renewToken` (SAS string or raw JWT). */
  readonly token: string;
  /** Epoch milliseconds. */
  readonly expiresAt: number;
}

export interface GetTokenOptions {
  /**
   * The token must stay valid at least this long from now; a cached one that expires sooner is
   * replaced. Renewal asks for this: resending the token the relay already holds renews nothing.
   * Providers that mint a new token per call (SAS) ignore it.
   */
  minValidityMs?: number;
}

export interface TokenProvider {
  readonly kind: "sas" | "entra";
  getToken(resourceUri: string, signal?: AbortSignal, opts?: GetTokenOptions): Promise<Token>;
}

/** Lifetime of the SAS tokens we mint, as in the Go tool. */
export const SAS_TOKEN_LIFETIME_MS = 3_600_000;

export interface SasTokenProviderOptions {
  lifetimeMs?: number;
  /** Clock (epoch ms); tests pin it. */
  now?: () => number;
}

/** Mints a fresh SAS token on every call (no caching, as in Go). */
export class SasTokenProvider implements TokenProvider {
  readonly kind = "sas";
  // Private fields keep the key out of console.log and JSON.stringify.
  readonly #keyName: string;
  readonly #key: string;
  readonly #lifetimeMs: number;
  readonly #now: () => number;

  constructor(keyName: string, key: string, opts: SasTokenProviderOptions = {}) {
    if (keyName === "" || key === "") {
      throw new AztunnelError("sas_invalid", "SAS key name and key must both be non-empty");
    }
    this.#keyName = keyName;
    this.#key = key;
    this.#lifetimeMs = opts.lifetimeMs ?? SAS_TOKEN_LIFETIME_MS;
    this.#now = opts.now ?? Date.now;
  }

  /** Every token is new and lives `lifetimeMs`, so `_opts.minValidityMs` needs nothing done. */
  async getToken(
    resourceUri: string,
    signal?: AbortSignal,
    _opts?: GetTokenOptions,
  ): Promise<Token> {
    signal?.throwIfAborted();
    const se = Math.floor((this.#now() + this.#lifetimeMs) / 1000);
    const token = await createSasToken(resourceUri, this.#keyName, this.#key, se);
    return { token, expiresAt: se * 1000 };
  }
}

/** Times one token-provider call (`Metrics.timeTokenFetch` fits). */
export interface TokenFetchTimer {
  timeTokenFetch<T>(provider: TokenProvider["kind"], fetch: () => Promise<T>): Promise<T>;
}

/**
 * `inner` with every `getToken` call timed by `timer` (`aztunnel_token_fetch_*`): cache hits
 * included, so the histogram count equals the counter, and always under `inner.kind`.
 */
export function timedTokenProvider(inner: TokenProvider, timer: TokenFetchTimer): TokenProvider {
  return {
    kind: inner.kind,
    getToken: (resourceUri, signal, opts) =>
      timer.timeTokenFetch(inner.kind, () => inner.getToken(resourceUri, signal, opts)),
  };
}
