/**
 * The one line for a relay refusing a listener's or a sender's credentials (HTTP 401/403): the
 * relay, the hyco, the answer and the fix for the right the key or role lacks.
 */
import type { RelayEndpoint } from "./endpoint.ts";
import { relayUrl } from "./urls.ts";

/** A refused handshake's answer (a control-channel or a rendezvous error). */
export interface RelayAnswer {
  readonly status?: number;
  readonly statusText?: string;
}

/** `HTTP 403 Forbidden`; `HTTP ?` without a status. */
export function httpAnswer(err: RelayAnswer): string {
  return `HTTP ${err.status ?? "?"}${err.statusText ? ` ${err.statusText}` : ""}`;
}

/** `relay <url> refused the listener|sender for hybrid connection <hyco> (<answer>): <fix>`. */
export function authRefusal(
  right: "Listen" | "Send",
  err: RelayAnswer,
  endpoint: RelayEndpoint,
  hyco: string,
): string {
  const role = right === "Listen" ? "Azure Relay Listener" : "Azure Relay Sender";
  const who = right === "Listen" ? "listener" : "sender";
  const fix = err.status === 403
    ? `the key/role lacks ${right}: use a SAS policy with the ${right} right or give the ` +
      `identity the ${role} role`
    : `check AZTUNNEL_KEY_NAME/AZTUNNEL_KEY or the Entra identity's role (${role})`;
  return `relay ${relayUrl(endpoint)} refused the ${who} for hybrid connection ${hyco} (${
    httpAnswer(err)
  }): ${fix}`;
}
