/**
 * A listener the relay refuses before it was ever connected is misconfigured: no retry fixes a
 * wrong key, a key or role without Listen, or a hybrid connection that does not exist. It stops
 * with one line naming the relay, the hyco and the fix, so systemd's `Restart=` and whoever
 * starts it by hand see a failure instead of a listener that retries forever. Once connected,
 * the same answers are retried (a relay restarting or a key being rotated).
 */
import { AztunnelError } from "../errors.ts";
import { isLoopback } from "../net/loopback.ts";
import type { ControlSessionError } from "../relay/control_channel.ts";
import type { RelayEndpoint } from "../relay/endpoint.ts";
import { authRefusal, httpAnswer } from "../relay/refusal.ts";
import { relayUrl } from "../relay/urls.ts";
import { parseIP } from "../tunnel/ip.ts";

/** Why the listener stopped: `auth_failed` (401/403) or `hyco_not_found` (404). */
export class ListenerRefusedError extends AztunnelError {
  declare readonly code: "auth_failed" | "hyco_not_found";
  constructor(code: ListenerRefusedError["code"], message: string, cause: ControlSessionError) {
    super(code, message, { cause });
    this.name = "ListenerRefusedError";
  }
}

/** True for the refusals a never-connected listener stops on (a 403 listener quota is not one). */
export function isStartupRefusal(err: ControlSessionError): boolean {
  return err.code === "auth_failed" || err.status === 404;
}

/** The one line a refused listener stops with. */
export function startupRefusal(
  err: ControlSessionError,
  endpoint: RelayEndpoint,
  hyco: string,
): ListenerRefusedError {
  const url = relayUrl(endpoint);
  const answer = httpAnswer(err);
  if (err.status === 404) {
    const ns = azureNamespace(endpoint);
    const fix = ns === null
      ? `start relay-server with --hyco ${hyco} (or without --hyco, to serve any name)`
      : `create it (az relay hyco create --resource-group <group> --namespace-name ${ns} --name ${hyco})`;
    return new ListenerRefusedError(
      "hyco_not_found",
      `relay ${url} answered ${answer}: hybrid connection ${hyco} does not exist in ${
        ns ?? url
      }: ${fix}`,
      err,
    );
  }
  return new ListenerRefusedError("auth_failed", authRefusal("Listen", err, endpoint, hyco), err);
}

/**
 * The namespace name of an Azure relay (`ns` of wss://ns.servicebus.windows.net); null for a
 * local relay-server (ws://, an IP address or a loopback name), where `az` is the wrong advice.
 */
function azureNamespace(endpoint: RelayEndpoint): string | null {
  if (endpoint.scheme !== "wss" || endpoint.host.startsWith("[")) return null;
  const hostname = endpoint.host.split(":")[0];
  if (!hostname.includes(".") || parseIP(hostname) !== null || isLoopback(hostname)) return null;
  return hostname.split(".")[0];
}
