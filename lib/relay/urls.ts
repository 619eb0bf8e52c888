/** Hybrid Connections URLs (aztunnel-reference.md §3.1) built from a parsed endpoint. */
import type { RelayEndpoint } from "./endpoint.ts";
import { pathEscape, queryEscape } from "./escape.ts";

function hcUrl(ep: RelayEndpoint, entity: string, action: "listen" | "connect"): string {
  return `${ep.scheme}://${ep.host}/$hc/${pathEscape(entity)}?sb-hc-action=${action}`;
}

/** The listener control channel URL, without a token. */
export function listenUrl(ep: RelayEndpoint, entity: string): string {
  return hcUrl(ep, entity, "listen");
}

/** The sender rendezvous URL, without a token. */
export function connectUrl(ep: RelayEndpoint, entity: string): string {
  return hcUrl(ep, entity, "connect");
}

/** Appends `sb-hc-token` the way Go does (the whole token query-escaped once more). */
export function withToken(url: string, token: string): string {
  return `${url}${url.includes("?") ? "&" : "?"}sb-hc-token=${queryEscape(token)}`;
}

/**
 * The SAS audience: `https://host[:port]/entity`, entity unescaped, all lowercased (as the Go tool
 * signs it), whatever the dial scheme.
 */
export function resourceUri(ep: RelayEndpoint, entity: string): string {
  return `https://${ep.host}/${entity}`.toLowerCase();
}

/** `wss://host` as logged in `control_started relay_url=`. */
export function relayUrl(ep: RelayEndpoint): string {
  return `${ep.scheme}://${ep.host}`;
}
