/** Base64 (RFC 4648 §4) and base64url (§5) of raw bytes: the one codec for keys, MACs and JWTs. */

/** Standard base64 with padding. */
export function encodeBase64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** Standard base64 (padding optional); null when `text` is not base64. */
export function decodeBase64(text: string): Uint8Array<ArrayBuffer> | null {
  let bin: string;
  try {
    bin = atob(text);
  } catch {
    return null;
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** base64url without padding, as JWTs carry it. */
export function encodeBase64Url(bytes: Uint8Array): string {
  return encodeBase64(bytes).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** base64url with or without padding; null when `text` is not base64url. */
export function decodeBase64Url(text: string): Uint8Array<ArrayBuffer> | null {
  if (/[+/]/.test(text)) return null;
  const b64 = text.replaceAll("-", "+").replaceAll("_", "/");
  return decodeBase64(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
}
