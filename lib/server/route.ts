/**
 * Request-target parsing for the relay: which endpoint (`/healthz`, `/$hc/{path}`), which action,
 * which hybrid connection. Pure functions; the HTTP layer hands us the raw request target.
 */

export type HcAction = "listen" | "connect" | "accept";

export type Route =
  | { readonly kind: "healthz" }
  | { readonly kind: "hc"; readonly target: HcTarget }
  | { readonly kind: "error"; readonly status: number; readonly reason: string };

export interface HcTarget {
  /** The path after `/$hc/` exactly as sent (still percent-encoded, no leading `/`). */
  readonly rawPath: string;
  /** Percent-decoded path without leading/trailing `/`: HC name plus optional suffix. */
  readonly path: string;
  /** The query string as sent, without `?`. */
  readonly rawQuery: string;
  /** Form-decoded query (`+` = space), as Azure clients encode it. */
  readonly query: URLSearchParams;
  readonly action: HcAction;
}

const HC_PREFIX = /^\/(?:\$|%24)hc(?:\/|$)/i;

/** Routes a raw HTTP request target (`/$hc/hyco?sb-hc-action=listen`). */
export function parseRoute(target: string): Route {
  const q = target.indexOf("?");
  const rawPathPart = q < 0 ? target : target.slice(0, q);
  const rawQuery = q < 0 ? "" : target.slice(q + 1);
  if (rawPathPart === "/healthz") return { kind: "healthz" };
  const prefix = HC_PREFIX.exec(rawPathPart);
  if (!prefix) return { kind: "error", status: 404, reason: "Not Found" };
  const rawPath = rawPathPart.slice(prefix[0].length);
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    return { kind: "error", status: 400, reason: "Bad Request: invalid percent-encoding in path" };
  }
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(decoded)) {
    return { kind: "error", status: 400, reason: "Bad Request: control character in path" };
  }
  const path = trimSlashes(decoded);
  if (path === "") return { kind: "error", status: 404, reason: "Endpoint does not exist" };
  const query = new URLSearchParams(rawQuery);
  const actionParam = query.get("sb-hc-action");
  let action: HcAction;
  if (actionParam === null || actionParam === "" || actionParam === "connect") action = "connect";
  else if (actionParam === "listen" || actionParam === "accept") action = actionParam;
  else {
    return { kind: "error", status: 400, reason: "Bad Request: unsupported sb-hc-action" };
  }
  return { kind: "hc", target: { rawPath, path, rawQuery, query, action } };
}

/** Strips leading and trailing `/`. */
export function trimSlashes(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && s[start] === "/") start++;
  while (end > start && s[end - 1] === "/") end--;
  return s.slice(start, end);
}

/** Hybrid connection names compare case-insensitively, like Service Bus entity names. */
export function nameKey(name: string): string {
  return name.toLowerCase();
}

/** True when `prefix` equals `path` or is a prefix of it ending at a `/` boundary (case-insensitive). */
export function isPathPrefix(prefix: string, path: string): boolean {
  const p = nameKey(prefix);
  const full = nameKey(path);
  return p === "" || full === p || full.startsWith(p + "/");
}

/**
 * The longest of `names` that is `path` or a `/`-boundary prefix of it, or undefined.
 * Used both for configured `--hyco` names and, in any-name mode, for the names listeners registered.
 */
export function longestNameMatch(path: string, names: Iterable<string>): string | undefined {
  let best: string | undefined;
  for (const name of names) {
    if (name === "" || !isPathPrefix(name, path)) continue;
    if (best === undefined || name.length > best.length) best = name;
  }
  return best;
}

/**
 * The sender's application query (everything not `sb-hc-*`), kept verbatim so the listener sees the
 * same encoding the sender used.
 */
export function applicationQuery(rawQuery: string): string {
  if (rawQuery === "") return "";
  return rawQuery.split("&").filter((pair) => {
    if (pair === "") return false;
    const eq = pair.indexOf("=");
    const rawName = eq < 0 ? pair : pair.slice(0, eq);
    let name: string;
    try {
      name = decodeURIComponent(rawName.replaceAll("+", " "));
    } catch {
      name = rawName;
    }
    return !name.toLowerCase().startsWith("sb-hc-");
  }).join("&");
}
