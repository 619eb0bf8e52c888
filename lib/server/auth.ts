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

/**
 * Checks `token` for `right` on the HC path `path` (decoded, name plus suffix).
 * `now` is injectable for tests.
 */
export async function authorize(
  token: string | undefined,
  right: "Listen" | "Send",
  path: string,
  cfg: AuthConfig,
  now = Date.now(),
): Promise<AuthOutcome> {
  if (token === undefined || token === "") return unauthorized("missing token");
  if (token.startsWith(SAS_PREFIX)) return await authorizeSas(token, right, path, cfg, now);
  const jwt = token.replace(/^Bearer\s+/i, "");
  if (looksLikeJwt(jwt)) {
    if (cfg.jwtKey === undefined) return unauthorized("JWT tokens are not accepted by this relay");
    const res = await verifyHs256Jwt(jwt, cfg.jwtKey, now);
    if (!res.ok) return unauthorized(res.reason);
    // An Entra token stands for an RBAC role; the stand-in grants what Relay Listener + Sender would.
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
  right: "Listen" | "Send",
  path: string,
  cfg: AuthConfig,
  now: number,
): Promise<AuthOutcome> {
  const fields = parseSasToken(token);
  if (!fields || fields.se.length > 12) return unauthorized("malformed SAS token");
  const policy = cfg.policies.find((p) => p.name === fields.skn);
  if (!policy) return unauthorized("unknown SAS key name");
  if (!(await verifySasSignature(fields, policy.key))) return unauthorized("invalid signature");
  const expiresAt = Number(fields.se) * 1000;
  if (expiresAt <= now) return unauthorized("token expired");
  const audience = audiencePath(fields.sr);
  if (audience === undefined) return unauthorized("malformed SAS resource (sr)");
  if (!isPathPrefix(audience, path)) {
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

/**
 * The entity path a SAS `sr` grants, decoded and without surrounding `/`; "" is namespace-wide.
 * Scheme and port are ignored; the host is not checked (a local relay answers to any name).
 */
export function audiencePath(srRaw: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(srRaw.replaceAll("+", " "));
  } catch {
    return undefined;
  }
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(decoded) ? decoded : `http://${decoded}`);
  } catch {
    return undefined;
  }
  let path = url.pathname;
  try {
    path = decodeURIComponent(path);
  } catch {
    // a literal `%` in the path: compare it as written
  }
  return trimSlashes(path);
}

function unauthorized(why: string): AuthOutcome {
  return { ok: false, status: 401, reason: `Unauthorized: ${why}` };
}
