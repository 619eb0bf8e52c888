/**
 * Shared Access Signature tokens (hybrid-connections-protocol.md §2.1–2.2), minted exactly as the Go
 * tool does and verified the way Azure does: HMAC-SHA256 keyed with the key's UTF-8 bytes over the
 * raw `sr` text, a newline and `se`.
 */
import { encodeBase64 } from "../crypto/base64.ts";
import { hmacSha256 } from "../crypto/hmac.ts";
import { AztunnelError } from "../errors.ts";
import { queryEscape } from "./escape.ts";
import { constantTimeEqual } from "../crypto/constant_time.ts";

const PREFIX = "SharedAccessSignature ";
const encoder = new TextEncoder();

/** The fields of a SAS token: `sr` and `se` exactly as they appear, `sig` and `skn` URL-decoded. */
export interface SasFields {
  readonly sr: string;
  readonly sig: string;
  readonly se: string;
  readonly skn: string;
}

/**
 * `SharedAccessSignature sr=…&sig=…&se=…&skn=…` for `resourceUri` (lowercased first, as Go does),
 * valid until `expiresAtSeconds` (Unix seconds).
 */
export async function createSasToken(
  resourceUri: string,
  keyName: string,
  key: string,
  expiresAtSeconds: number,
): Promise<string> {
  if (key === "") throw new AztunnelError("sas_invalid", "SAS key is empty");
  const sr = queryEscape(resourceUri.toLowerCase());
  const se = String(Math.floor(expiresAtSeconds));
  const sig = encodeBase64(await hmacSha256(key, `${sr}\n${se}`));
  return `${PREFIX}sr=${sr}&sig=${queryEscape(sig)}&se=${se}&skn=${queryEscape(keyName)}`;
}

/** Splits a SAS token into its fields; null when it is not one (fields may come in any order). */
export function parseSasToken(token: string): SasFields | null {
  if (!token.startsWith(PREFIX)) return null;
  const fields = new Map<string, string>();
  for (const pair of token.slice(PREFIX.length).split("&")) {
    const eq = pair.indexOf("=");
    if (eq <= 0) return null;
    const name = pair.slice(0, eq);
    if (fields.has(name)) return null;
    fields.set(name, pair.slice(eq + 1));
  }
  const sr = fields.get("sr");
  const sig = fields.get("sig");
  const se = fields.get("se");
  const skn = fields.get("skn");
  if (!sr || !sig || !se || !skn || !/^[0-9]+$/.test(se)) return null;
  try {
    // decodeURIComponent, not form decoding: a raw `+` inside base64 must stay a `+`.
    return { sr, sig: decodeURIComponent(sig), se, skn: decodeURIComponent(skn) };
  } catch {
    return null;
  }
}

/** True when `fields.sig` is the HMAC of the raw `sr + "\n" + se` under `key` (constant time). */
export async function verifySasSignature(fields: SasFields, key: string): Promise<boolean> {
  if (key === "") return false;
  const expected = encodeBase64(await hmacSha256(key, `${fields.sr}\n${fields.se}`));
  return constantTimeEqual(encoder.encode(expected), encoder.encode(fields.sig));
}
