/**
 * Who may listen or send: SAS tokens checked exactly as the protocol notes §2 describe (HMAC over the
 * raw `sr`, audience prefix at a `/` boundary, expiry, rights per policy) and, optionally, HS256 JWTs.
 */
import { parseSasToken, verifySasSignature } from "../relay/sas.ts";
import { looksLikeJwt, verifyHs256Jwt } from "./jwt.ts";
import { hasRight, type SasPolicy } from "./policy.ts";
import { isPathPrefix, trimSlashes } from "./route.ts";

export interface AuthConfig {
  readonly policies: readonly SasPolicy[];
  /** Shared secret for HS256 JWTs; absent = JWTs are refused. */
  readonly jwtKey?: string;
}

export type AuthOutcome =
  | {
    readonly ok: true;
    /** Epoch ms after which the token no longer holds. */
    readonly expiresAt: number;
    /** For logs: `sas:<keyName>` or `jwt[:<sub>]`. */
    readonly principal: string;
  }
  | { readonly ok: false; readonly status: 401 | 403; readonly reason: string };

export const SAS_PREFIX = "SharedAccessSignature ";

/** The `ServiceBusAuthorization` header wins over the `sb-hc-token` query parameter. */
export function extractToken(headers: Headers, query: URLSearchParams): string | undefined {
  const header = headers.get("ServiceBusAuthorization")?.trim();
  if (header) return header;
  const fromQuery = query.get("sb-hc-token")?.trim();
  return fromQuery ? fromQuery : undefined;
}

/** What a token must grant. */
export interface AuthCheck {
  readonly right: "Listen" | "Send";
  /** The HC path (decoded, name plus suffix). */
  readonly path: string;
  /**
   * The names this relay answers to (lower case, no port): a SAS `sr` must name one of them, as on
   * Azure it must name the namespace; absent = any host.
   */
  readonly hosts?: ReadonlySet<string>;
  /** Epoch ms; tests pin it. */
  readonly now?: number;
}

/** Checks `token` against `check` under the relay's policies and JWT key. */
export async function authorize(
  token: string | undefined,
  check: AuthCheck,
  cfg: AuthConfig,
): Promise<AuthOutcome> {
  const { right } = check;
  const now = check.now ?? Date.now();
  if (token === undefined || token === "") return unauthorized("missing token");
  if (token.startsWith(SAS_PREFIX)) return await authorizeSas(token, { ...check, now }, cfg);
  const jwt = token.replace(/^Bearer\s+/i, "");
  if (looksLikeJwt(jwt)) {
    if (cfg.jwtKey === undefined) return unauthorized("JWT tokens are not accepted by this relay");
    const res = await verifyHs256Jwt(jwt, cfg.jwtKey, now);
    if (!res.ok) return unauthorized(res.reason);
    // The stand-in for RBAC: the `roles` claim lists what the Relay Listener/Sender/Owner roles grant.
    if (res.roles.length === 0) return unauthorized("JWT has no Listen, Send or Manage role");
    if (!hasRight(res.roles, right)) {
      return { ok: false, status: 403, reason: `Forbidden: JWT lacks the ${right} role` };
    }
    return {
      ok: true,
      expiresAt: res.expiresAt,
      principal: res.subject ? `jwt:${res.subject}` : "jwt",
    };
  }
  return unauthorized("malformed token");
}

async function authorizeSas(
  token: string,
  { right, path, hosts, now }: AuthCheck & { readonly now: number },
  cfg: AuthConfig,
): Promise<AuthOutcome> {
  const fields = parseSasToken(token);
  if (!fields || fields.se.length > 12) return unauthorized("malformed SAS token");
  const policy = cfg.policies.find((p) => p.name === fields.skn);
  if (!policy) return unauthorized("unknown SAS key name");
  if (!(await verifySasSignature(fields, policy.key))) return unauthorized("invalid signature");
  const expiresAt = Number(fields.se) * 1000;
  if (expiresAt <= now) return unauthorized("token expired");
  const audience = parseAudience(fields.sr);
  if (audience === undefined) return unauthorized("malformed SAS resource (sr)");
  if (hosts !== undefined && !hosts.has(audience.host)) {
    return unauthorized("token audience (sr) names another host");
  }
  if (!isPathPrefix(audience.path, path)) {
    return {
      ok: false,
      status: 403,
      reason: "Forbidden: token audience does not cover this entity",
    };
  }
  if (!hasRight(policy.rights, right)) {
    return {
      ok: false,
      status: 403,
      reason: `Forbidden: policy "${policy.name}" lacks the ${right} right`,
    };
  }
  return { ok: true, expiresAt, principal: `sas:${policy.name}` };
}

export interface Audience {
  /** Lower case, without port or IPv6 brackets. */
  readonly host: string;
  /** Decoded, without surrounding `/`; "" is namespace-wide. */
  readonly path: string;
}

/**
 * Host and entity path of a SAS `sr`. It must be an absolute URI with a host (`sr=other` is not a
 * resource, and must not pass as a namespace-wide grant); scheme and port are ignored.
 */
export function parseAudience(srRaw: string): Audience | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(srRaw.replaceAll("+", " "));
  } catch {
    return undefined;
  }
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(decoded)) return undefined;
  let url: URL;
  try {
    url = new URL(decoded);
  } catch {
    return undefined;
  }
  if (url.hostname === "") return undefined;
  let path = url.pathname;
  try {
    path = decodeURIComponent(path);
  } catch {
    // a literal `%` in the path: compare it as written
  }
  return { host: hostKey(url.hostname), path: trimSlashes(path) };
}

/** The entity path a SAS `sr` grants (see parseAudience). */
export function audiencePath(srRaw: string): string | undefined {
  return parseAudience(srRaw)?.path;
}

/** A host name as compared here: lower case, no IPv6 brackets. */
export function hostKey(hostname: string): string {
  return hostname.toLowerCase().replace(/^\[|\]$/g, "");
}

function unauthorized(why: string): AuthOutcome {
  return { ok: false, status: 401, reason: `Unauthorized: ${why}` };
}
