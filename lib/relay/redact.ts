/** Keeps relay tokens out of logs and errors (aztunnel-reference.md §3.9). */

const TOKEN_PARAM = /sb-hc-token=[^"&\s]*/g;

/** Replaces every `sb-hc-token=<value>` (value ends at `"`, `&` or whitespace) with `REDACTED`. */
export function redact(text: string): string {
  return text.replace(TOKEN_PARAM, "sb-hc-token=REDACTED");
}
