/**
 * Entra ID tokens through @azure/identity's DefaultAzureCredential (aztunnel-reference.md §3.3).
 *
 * @azure/identity is imported lazily: a static import costs ~180 ms of start-up that SAS users and
 * every `ssh` ProxyCommand would pay. Never import it statically here (type-only imports are fine).
 */
import { abortable } from "../async.ts";
import { AztunnelError, errorMessage, firstLine } from "../errors.ts";
import { getLogger } from "../observe/log.ts";
import type { GetTokenOptions, Token, TokenProvider } from "./token.ts";

/** The one scope Azure Relay accepts; the resource URI of a dial never changes it. */
export const RELAY_SCOPE = "https://relay.azure.net/.default";

/** Without a RefreshOn hint, a cached token is replaced this long before it expires. */
export const REFRESH_SKEW_MS = 5 * 60_000;

/** A refresh failure still serves the cached token while it has at least this much life left. */
const STALE_GRACE_MS = 60_000;

/** What the cache needs from a credential; @azure/identity's TokenCredential fits. */
export interface AccessTokenLike {
  readonly token: string;
  /** Epoch ms. */
  readonly expiresOnTimestamp: number;
  /** Epoch ms; when the identity library suggests refreshing (MSAL's RefreshOn). */
  readonly refreshAfterTimestamp?: number;
}

export interface CredentialLike {
  getToken(
    scopes: string | string[],
    options?: { abortSignal?: AbortSignal },
  ): Promise<AccessTokenLike | null>;
}

/** What a relay user can do after an Entra failure. */
export const RELAY_FIX_HINT =
  "set AZTUNNEL_KEY_NAME and AZTUNNEL_KEY to use a SAS key instead, or sign in with `az login` " +
  "(or run with a managed or workload identity), and give that identity the " +
  '"Azure Relay Listener" (relay-listener) or "Azure Relay Sender" (relay-sender) role ' +
  "on the namespace or hybrid connection";

export interface TokenCacheOptions {
  /** Defaults to the process-wide DefaultAzureCredential. */
  credential?: CredentialLike;
  /** Appended to failures as "to fix: …". */
  fixHint?: string;
  /** Clock (epoch ms); tests pin it. */
  now?: () => number;
}

let defaultCredential: Promise<CredentialLike> | undefined;

/**
 * The process-wide DefaultAzureCredential, built on first use. A failed import or construction is
 * not kept, so a later call can try again.
 */
export function defaultAzureCredential(): Promise<CredentialLike> {
  defaultCredential ??= (async () => {
    const identity = await import("@azure/identity");
    return new identity.DefaultAzureCredential();
  })().catch((err) => {
    defaultCredential = undefined;
    throw new AztunnelError(
      "auth_unavailable",
      `cannot set up Entra ID authentication (DefaultAzureCredential): ${headline(err)}`,
      { cause: err },
    );
  });
  return defaultCredential;
}

/**
 * One cached token for one scope: reused until RefreshOn (else 5 minutes before expiry), or sooner
 * for a caller that needs it valid longer (`minValidityMs`); refreshed by a single in-flight request
 * however many callers wait, failures never cached. A caller's signal only abandons its own wait;
 * the shared fetch keeps going for the others.
 */
export class EntraTokenCache {
  readonly scope: string;
  readonly #credential: CredentialLike | undefined;
  readonly #fixHint: string | undefined;
  readonly #now: () => number;
  #cached: { token: Token; refreshAt: number } | undefined;
  #inflight: Promise<Token> | undefined;

  constructor(scope: string, opts: TokenCacheOptions = {}) {
    this.scope = scope;
    this.#credential = opts.credential;
    this.#fixHint = opts.fixHint;
    this.#now = opts.now ?? Date.now;
  }

  get(signal?: AbortSignal, opts: GetTokenOptions = {}): Promise<Token> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const cached = this.#cached;
    const now = this.#now();
    if (
      cached && now < cached.refreshAt &&
      cached.token.expiresAt - now >= (opts.minValidityMs ?? 0)
    ) {
      return Promise.resolve(cached.token);
    }
    this.#inflight ??= this.#refresh().finally(() => {
      this.#inflight = undefined;
    });
    return abortable(this.#inflight, signal);
  }

  async #refresh(): Promise<Token> {
    const previous = this.#cached;
    try {
      const credential = this.#credential ?? await defaultAzureCredential();
      const access = await credential.getToken(this.scope);
      if (!access || !access.token) {
        throw new AztunnelError("auth_unavailable", "the credential returned no token");
      }
      const token: Token = { token: access.token, expiresAt: access.expiresOnTimestamp };
      this.#cached = {
        token,
        refreshAt: access.refreshAfterTimestamp ?? access.expiresOnTimestamp - REFRESH_SKEW_MS,
      };
      return token;
    } catch (err) {
      if (previous && previous.token.expiresAt - STALE_GRACE_MS > this.#now()) {
        getLogger().warn("entra token refresh failed, using the current token", {
          scope: this.scope,
          error: summarizeCredentialError(err),
        });
        return previous.token;
      }
      throw entraError(err, this.scope, this.#fixHint);
    }
  }
}

/** The relay TokenProvider: the raw JWT for `sb-hc-token` and `renewToken`. */
class EntraTokenProvider implements TokenProvider {
  readonly kind = "entra";
  readonly #cache: EntraTokenCache;
  constructor(cache: EntraTokenCache) {
    this.#cache = cache;
  }
  getToken(_resourceUri: string, signal?: AbortSignal, opts?: GetTokenOptions): Promise<Token> {
    return this.#cache.get(signal, opts);
  }
}

export interface EntraProviderOptions {
  /** Tests inject a credential; the default shares one DefaultAzureCredential and one cache. */
  credential?: CredentialLike;
  now?: () => number;
}

let sharedProvider: TokenProvider | undefined;

/**
 * A TokenProvider (kind "entra") for scope `https://relay.azure.net/.default`. Without an injected
 * credential, every call returns the same provider, so a process holds a single token cache.
 */
export function createEntraTokenProvider(opts: EntraProviderOptions = {}): TokenProvider {
  if (!opts.credential && !opts.now) {
    sharedProvider ??= new EntraTokenProvider(
      new EntraTokenCache(RELAY_SCOPE, { fixHint: RELAY_FIX_HINT }),
    );
    return sharedProvider;
  }
  return new EntraTokenProvider(
    new EntraTokenCache(RELAY_SCOPE, {
      credential: opts.credential,
      now: opts.now,
      fixHint: RELAY_FIX_HINT,
    }),
  );
}

/** A credential failure (code `auth_unavailable`) whose message says what was tried and the fix. */
export class EntraAuthError extends AztunnelError {
  /** The message without the credentials tried and the fix, for repeated log lines. */
  readonly summary: string;
  constructor(message: string, summary: string, options?: ErrorOptions) {
    super("auth_unavailable", message, options);
    this.name = "EntraAuthError";
    this.summary = summary;
  }
}

/** One line for a credential failure, saying what was tried and how to fix it. */
export function entraError(
  err: unknown,
  scope: string,
  fixHint?: string,
): EntraAuthError {
  const hint = fixHint ? `; to fix: ${fixHint}` : "";
  // Our own failures (library missing, empty answer) already read well.
  const summary = err instanceof AztunnelError
    ? err.message
    : `Entra ID authentication failed: no credential could get a token for ${scope}`;
  const what = err instanceof AztunnelError
    ? summary
    : `${summary} (${summarizeCredentialError(err)})`;
  return new EntraAuthError(`${what}${hint}`, summary, { cause: err });
}

/** Labels for DefaultAzureCredential's links, matched on the messages the library writes. */
const LINKS: ReadonlyArray<readonly [RegExp, string]> = [
  [/EnvironmentCredential/, "environment"],
  [/WorkloadIdentityCredential/, "workload identity"],
  [/ManagedIdentityCredential|managed identity/i, "managed identity"],
  [/Visual Studio Code/i, "VS Code"],
  [/Azure Developer CLI|azd/i, "Azure Developer CLI"],
  [/Azure CLI|az login/i, "Azure CLI"],
  [/PowerShell/i, "Azure PowerShell"],
  [/Broker/i, "broker"],
];

/**
 * Squeezes @azure/identity's multi-line (aggregate) message into `tried: a (why); b (why)` or a
 * single cause, so the CLI prints one readable line and never a stack.
 */
export function summarizeCredentialError(err: unknown): string {
  const nested = (err as { errors?: unknown })?.errors;
  if (Array.isArray(nested) && nested.length > 0) {
    return `tried: ${nested.map(describeLink).join("; ")}`;
  }
  return describeLink(err);
}

function describeLink(err: unknown): string {
  const message = errorMessage(err);
  const label = LINKS.find(([re]) => re.test(message))?.[1];
  const why = shortReason(message, label);
  return label ? `${label}: ${why}` : why;
}

function shortReason(message: string, label: string | undefined): string {
  switch (label) {
    case "environment":
      if (/unavailable/i.test(message)) {
        return "not configured (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET)";
      }
      break;
    case "workload identity":
      if (/unavailable|not set|missing/i.test(message)) return "not configured";
      break;
    case "Azure CLI":
      if (/could not be found|not installed|not found/i.test(message)) return "az not installed";
      if (/az login/i.test(message)) return "not signed in (run `az login`)";
      break;
    case "Azure Developer CLI":
      if (/couldn't be found|not found|not installed/i.test(message)) return "azd not installed";
      if (/azd auth login/i.test(message)) return "not signed in (run `azd auth login`)";
      break;
    case "Azure PowerShell":
      if (/Unable to execute|not installed|not found/i.test(message)) return "not installed";
      break;
    case "VS Code":
      return "not available";
    case "managed identity": {
      // MSAL's shape: "…Message <code>: … Description: <text> - Correlation ID…\nHttp status code: N…"
      const status = /Http status code: (\d+)/i.exec(message)?.[1];
      const statusText = /Http status message: ([^\n]*)/i.exec(message)?.[1]?.trim();
      if (status) return clip(`HTTP ${status}${statusText ? ` ${statusText}` : ""}`, 100);
      const code = /Message (\w+):/.exec(message)?.[1];
      const desc = /Description: (.*?)(?: - Correlation ID|\n|$)/.exec(message)?.[1]?.trim();
      if (code && desc) return clip(`${code}: ${desc}`, 100);
      break;
    }
  }
  return clip(headline(message).replace(/^\w*Credential:\s*/, ""), 120);
}

/** The first line of an Azure error without the "To troubleshoot, visit …" advice. */
function headline(err: unknown): string {
  return firstLine(typeof err === "string" ? err : errorMessage(err))
    .replace(/\s*To (?:troubleshoot|mitigate)[^]*$/i, "")
    .replace(/\s*(?:Please )?visit https?:\/\/\S+[^]*$/i, "")
    .trim();
}

function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}
