/**
 * `listener ready`: the one INFO line, once the control channel is first up, that says what this
 * listener serves and how it authenticated, so a start-up can be checked at a glance.
 */
import type { Logger } from "../observe/log.ts";
import type { RelayEndpoint } from "../relay/endpoint.ts";
import type { TokenProvider } from "../relay/token.ts";
import { authLogAttrs, type RelayAuthMode } from "../relay/token_from_env.ts";
import { relayUrl } from "../relay/urls.ts";
import type { Allowlist } from "../tunnel/allowlist.ts";

/** Entries named in the summary; the rest are counted only. */
const SHOWN_ENTRIES = 5;

export interface ReadyFacts {
  readonly endpoint: RelayEndpoint;
  readonly hyco: string;
  readonly allowlist: Allowlist | null;
  /** 0 = unlimited. */
  readonly maxConnections: number;
  readonly maxWarmLegs: number;
  /** With the SAS key name; without it only the provider's kind is known. */
  readonly auth?: RelayAuthMode;
  readonly tokensKind: TokenProvider["kind"];
}

export function logReady(log: Logger, facts: ReadyFacts): void {
  log.info("listener ready", {
    relay_url: relayUrl(facts.endpoint),
    hyco: facts.hyco,
    allow: allowlistSummary(facts.allowlist),
    max_connections: facts.maxConnections === 0 ? "unlimited" : facts.maxConnections,
    max_warm_legs: facts.maxWarmLegs,
    ...(facts.auth ? authLogAttrs(facts.auth) : { auth: facts.tokensKind }),
  });
}

/** `any target (*)`, or `3 entries: 10.0.0.0/8:*, 127.0.0.1:22, *.corp:443` (long lists cut). */
export function allowlistSummary(allowlist: Allowlist | null): string {
  if (allowlist === null || allowlist.entries.includes("*")) return "any target (*)";
  const { entries } = allowlist;
  const shown = entries.slice(0, SHOWN_ENTRIES).join(", ");
  const more = entries.length > SHOWN_ENTRIES ? ", …" : "";
  return `${entries.length} ${entries.length === 1 ? "entry" : "entries"}: ${shown}${more}`;
}
