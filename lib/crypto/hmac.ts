/** HMAC-SHA256 keyed with a secret's UTF-8 bytes: SAS signatures and HS256 JWTs. */

const encoder = new TextEncoder();

/** The WebCrypto key for `secret` (its UTF-8 bytes; the text is never base64-decoded). */
export function importHmacKey(
  secret: string,
  usages: readonly ("sign" | "verify")[],
): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    [...usages],
  );
}

/** HMAC-SHA256 of `message`'s UTF-8 bytes under `secret`. */
export async function hmacSha256(secret: string, message: string): Promise<Uint8Array> {
  const key = await importHmacKey(secret, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(message)));
}
