/**
 * Keeps Arc relay secrets (the `accessKey` SAS string and the service configuration token) out of
 * errors and logs (aztunnel-reference.md §3.9), wherever they show up: as upgrade headers, as JSON
 * fields of an ARM body, or verbatim.
 */
import { redact } from "../relay/redact.ts";

/**
 * A header value ends at whitespace, `;`, `,`, `(`, `)`, `"`, `}`, `]` or the end of the line, so a
 * hint that follows it in an error survives. The access key's `SharedAccessSignature ` scheme word is
 * followed by a space, which is why it is matched on its own before the token proper.
 */
const HEADER_VALUE =
  /(servicebusauthorization|service-configuration-token)("?[ \t]*[:=][ \t]*"?\[?)(?:SharedAccessSignature[ \t]+)?[^\s;,()"}\]]*/gi;
const JSON_FIELD = /"(accessKey|serviceConfigurationToken)"(\s*:\s*)"(?:[^"\\]|\\.)*"/g;

/** Secrets shorter than this are not replaced verbatim (they would mangle ordinary text). */
const MIN_SECRET_LENGTH = 8;

export function redactArc(text: string, secrets: readonly string[] = []): string {
  let out = redact(text)
    .replace(HEADER_VALUE, "$1$2REDACTED")
    .replace(JSON_FIELD, '"$1"$2"REDACTED"');
  for (const secret of secrets) {
    if (secret.length >= MIN_SECRET_LENGTH) out = out.replaceAll(secret, "REDACTED");
  }
  return out;
}
