/**
 * A sender's relay credentials at start-up and on first use: the auth its start line names, the
 * Entra token fetched before it listens (no credential: fail at once, not at the first client),
 * and one ERROR, naming the relay, the hyco and the fix, when the relay refuses the credentials
 * before it ever took them. The sender keeps serving after that (a key may be being rotated), but
 * its first client's failure is not only a WARN among others.
 */
import type { Logger } from "../observe/log.ts";
import type { RelayDialError } from "../relay/dial_error.ts";
import { authLogAttrs, type RelayAuthMode } from "../relay/token_from_env.ts";
import { authRefusal } from "../relay/refusal.ts";
import { resourceUri } from "../relay/urls.ts";
import type { SenderRelayConfig } from "./open_tunnel.ts";

/** `auth=sas key_name=…` / `auth=entra`; without the mode, the provider's kind. */
export function senderAuthAttrs(
  relay: SenderRelayConfig,
  auth: RelayAuthMode | undefined,
): Record<string, string> {
  return auth ? authLogAttrs(auth) : { auth: relay.tokens.kind };
}

/**
 * Gets an Entra token now, so that a sender without a working credential fails before it listens
 * with the credential error (which says what was tried and the fix). SAS needs nothing: its
 * tokens are signed locally. Rejects with `signal.reason` when stopped.
 */
export async function checkStartupToken(
  relay: SenderRelayConfig,
  signal: AbortSignal,
): Promise<void> {
  if (relay.tokens.kind !== "entra") return;
  await relay.tokens.getToken(resourceUri(relay.endpoint, relay.entity), signal);
}

/** The line for a relay refusing the sender's credentials (HTTP 401/403). */
export function senderRefusal(err: RelayDialError, relay: SenderRelayConfig): string {
  return authRefusal("Send", err, relay.endpoint, relay.entity);
}

/** Watches a sender's tunnel opens: the first refusal before any success is logged at ERROR. */
export class CredentialWatch {
  readonly #relay: SenderRelayConfig;
  readonly #logger: Logger;
  /** The relay took the credentials once, or the refusal was already reported. */
  #settled = false;

  constructor(relay: SenderRelayConfig, logger: Logger) {
    this.#relay = relay;
    this.#logger = logger;
  }

  /** A tunnel opened: the credentials work. */
  accepted(): void {
    this.#settled = true;
  }

  /** A relay dial failed with `err`. */
  failed(err: RelayDialError): void {
    if (this.#settled || err.code !== "auth_failed") return;
    this.#settled = true;
    this.#logger.error(senderRefusal(err, this.#relay), { status: err.status });
  }
}
