/** Correlation ids (aztunnel-reference.md §3.8): 10 random bytes as unpadded RFC 4648 base32. */

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** Base32 (A–Z2–7) without padding. */
export function base32(bytes: Uint8Array): string {
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (const b of bytes) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(buffer >> bits) & 31];
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}

/** A fresh 16-character id such as `listener_id`, `control_session_id` or `accept_id`. */
export function newId(): string {
  return base32(crypto.getRandomValues(new Uint8Array(10)));
}
