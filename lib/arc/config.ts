/** Validation of the Arc command inputs: resource id, service, port, ARM endpoint, relay override. */
import { parseDuration } from "../duration.ts";
import { UsageError } from "../errors.ts";
import { isLoopback } from "../net/loopback.ts";

export const ARC_SERVICES = ["SSH", "WAC"] as const;
export type ArcService = typeof ARC_SERVICES[number];

export const DEFAULT_ARM_ENDPOINT = "https://management.azure.com";

/** `SSH` or `WAC`, any case (the Go tool sent anything verbatim and let ARM fail later). */
export function parseArcService(text: string): ArcService {
  const upper = text.trim().toUpperCase();
  const found = ARC_SERVICES.find((s) => s === upper);
  if (!found) throw new UsageError(`invalid --service "${text}": must be SSH or WAC`);
  return found;
}

/**
 * The machine port when `--port` is not given. The Go tool used 22 for every service, so
 * `--service WAC` alone pointed the agent at SSH, where no WAC client can work; 6516 is where
 * Windows Admin Center (and Arc's WAC extension) listens. A deliberate difference: nothing that
 * worked with Go changes, since an explicit `--port` (22 included) is always honoured.
 */
export const DEFAULT_ARC_PORTS: Readonly<Record<ArcService, number>> = { SSH: 22, WAC: 6516 };

/** `--port` when given, else the service's default port. Throws UsageError. */
export function resolveArcPort(text: string | number | undefined, service: ArcService): number {
  return text === undefined ? DEFAULT_ARC_PORTS[service] : parseArcPort(text);
}

/**
 * `arc port-forward --tcp-keepalive`: validated, and keepalive stays on for every value. Go passed
 * 0 and negative values to a setter that then set nothing, which left Go's own 15 s keepalive on;
 * Deno cannot set the interval, so "on" is the only faithful reading.
 */
export function arcKeepAlive(text: string): boolean {
  parseDuration(text, "--tcp-keepalive");
  return true;
}

export function parseArcPort(text: string | number): number {
  const s = String(text).trim();
  const n = Number(s);
  if (!/^\d+$/.test(s) || n < 1 || n > 65535) {
    throw new UsageError(`invalid --port "${text}": must be 1-65535`);
  }
  return n;
}

/**
 * A machine resource id such as
 * `/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.HybridCompute/machines/<name>`,
 * without a trailing `/`. Only the shape ARM needs is checked, so other Arc resource types work.
 */
export function parseResourceId(text: string | undefined): string {
  if (!text || text.trim() === "") {
    throw new UsageError(
      "resource ID is required: use --resource-id or set AZTUNNEL_ARC_RESOURCE_ID",
    );
  }
  const rid = text.trim().replace(/\/+$/, "");
  if (
    !/^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/[^/]+\/[^/]+\/[^/]+(\/[^/]+)*$/i
      .test(rid) || /[?#\s]/.test(rid)
  ) {
    throw new UsageError(
      `invalid --resource-id "${text}": expected /subscriptions/<subscription>/resourceGroups/<group>/providers/Microsoft.HybridCompute/machines/<name>`,
    );
  }
  return rid;
}

/**
 * `--arm-endpoint`: an https origin (sovereign clouds), or http on a loopback host (tests, local
 * fakes). Anything after the host is refused: ARM paths are absolute.
 */
export function parseArmEndpoint(text: string | undefined): URL {
  const value = (text ?? "").trim() || DEFAULT_ARM_ENDPOINT;
  const fail = (why: string) => new UsageError(`invalid --arm-endpoint "${value}": ${why}`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw fail("not a URL");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw fail("must be https://");
  if (url.protocol === "http:" && !isLoopback(url.hostname)) {
    throw fail("plain http:// is allowed only for loopback hosts");
  }
  if (url.username || url.password || url.search || url.hash || (url.pathname !== "/")) {
    throw fail("expected a scheme and host only, like https://management.azure.com");
  }
  return new URL(url.origin);
}

/** The token scope for ARM at `endpoint` (`https://management.azure.com/.default` by default). */
export function armScope(endpoint: URL): string {
  return `${endpoint.origin}/.default`;
}

export interface RelayBase {
  readonly scheme: "ws" | "wss";
  /** host[:port] */
  readonly host: string;
}

/**
 * `AZTUNNEL_ARC_RELAY_URL` (a test and diagnostics override): the base URL the Arc relay dial goes
 * to instead of `wss://{namespaceName}.{namespaceNameSuffix}`; path, query and headers are kept.
 */
export function parseArcRelayUrl(text: string): RelayBase {
  const fail = (why: string) => new UsageError(`invalid AZTUNNEL_ARC_RELAY_URL "${text}": ${why}`);
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw fail("not a URL");
  }
  if (url.protocol !== "ws:" && url.protocol !== "wss:") throw fail("must be ws:// or wss://");
  // The Arc headers carry the relay access key: never in clear text off this machine.
  if (url.protocol === "ws:" && !isLoopback(url.hostname)) {
    throw fail("plain ws:// is allowed only for loopback hosts");
  }
  if (url.username || url.password || url.search || url.hash || url.pathname !== "/") {
    throw fail("expected a scheme and host only, like ws://127.0.0.1:8080");
  }
  return { scheme: url.protocol === "ws:" ? "ws" : "wss", host: url.host };
}
