/**
 * HS256 JWT verification for Entra-style tests against the local relay (`--entra-jwt-key`).
 * Real Entra tokens are RS256 and cannot be verified offline; this is the stand-in.
 */
import { decodeBase64Url } from "../crypto/base64.ts";
import { importHmacKey } from "../crypto/hmac.ts";
import { ALL_RIGHTS, type Right } from "./policy.ts";

export type JwtResult =
  | {
    readonly ok: true;
    readonly expiresAt: number;
    readonly subject: string;
    /** Relay rights from the `roles` claim (unknown entries ignored, any case). */
    readonly roles: readonly Right[];
  }
  | { readonly ok: false; readonly reason: string };

/** Allowed clock skew for `nbf` (a token minted on a machine slightly ahead must work at once). */
const NBF_SKEW_MS = 60_000;

const encoder = new TextEncoder();

/** Three non-empty base64url parts: the shape of a compact JWS. */
export function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token);
}

/** Verifies signature (HS256 only), `exp` (required), `nbf` and `aud` (when present). */
export async function verifyHs256Jwt(
  token: string,
  secret: string,
  now = Date.now(),
): Promise<JwtResult> {
  if (!looksLikeJwt(token)) return { ok: false, reason: "malformed JWT" };
  const [h, p, s] = token.split(".");
  const header = decodeJson(h);
  const payload = decodeJson(p);
  const sig = decodeBase64Url(s);
  if (!header || !payload || !sig) return { ok: false, reason: "malformed JWT" };
  // Only HS256: accepting "none" or letting the token pick the algorithm is the classic JWT hole.
  if (header.alg !== "HS256") return { ok: false, reason: "unsupported JWT algorithm" };
  const key = await importHmacKey(secret, ["verify"]);
  const valid = await crypto.subtle.verify("HMAC", key, sig, encoder.encode(`${h}.${p}`));
  if (!valid) return { ok: false, reason: "invalid JWT signature" };
  const exp = payload.exp;
  if (typeof exp !== "number" || !Number.isFinite(exp)) {
    return { ok: false, reason: "JWT has no exp" };
  }
  if (exp * 1000 <= now) return { ok: false, reason: "JWT expired" };
  const nbf = payload.nbf;
  if (nbf !== undefined && (typeof nbf !== "number" || nbf * 1000 - NBF_SKEW_MS > now)) {
    return { ok: false, reason: "JWT not yet valid" };
  }
  if (payload.aud !== undefined && !audienceIsRelay(payload.aud)) {
    return { ok: false, reason: "JWT audience is not Azure Relay" };
  }
  const subject = typeof payload.sub === "string" ? payload.sub : "";
  return { ok: true, expiresAt: exp * 1000, subject, roles: rolesOf(payload.roles) };
}

/** `roles: ["Listen", "Send", "Manage"]` as the stand-in for the Relay RBAC roles. */
export function rolesOf(claim: unknown): Right[] {
  if (!Array.isArray(claim)) return [];
  const out: Right[] = [];
  for (const entry of claim) {
    if (typeof entry !== "string") continue;
    const right = ALL_RIGHTS.find((r) => r.toLowerCase() === entry.toLowerCase());
    if (right && !out.includes(right)) out.push(right);
  }
  return out;
}

/**
 * Relay-ish audiences: `https://relay.azure.net[/…]` (what Entra issues for the Relay scope) or a
 * namespace URL (`*.servicebus.*`), in any scheme; a list passes when one entry does.
 */
export function audienceIsRelay(aud: unknown): boolean {
  if (Array.isArray(aud)) return aud.some(audienceIsRelay);
  if (typeof aud !== "string") return false;
  let host: string;
  try {
    host = new URL(aud).hostname.toLowerCase();
  } catch {
    return false;
  }
  return host === "relay.azure.net" || host.includes(".servicebus.");
}

function decodeJson(part: string): Record<string, unknown> | undefined {
  const bytes = decodeBase64Url(part);
  if (!bytes) return undefined;
  try {
    const v: unknown = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    return v !== null && typeof v === "object" && !Array.isArray(v)
      ? v as Record<string, unknown>
      : undefined;
  } catch {
    return undefined;
  }
}
