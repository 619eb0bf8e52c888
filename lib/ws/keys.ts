/** The RFC 6455 handshake keys: Sec-WebSocket-Key and the Sec-WebSocket-Accept it calls for. */
import { encodeBase64 } from "../crypto/base64.ts";

export const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2). */
export async function acceptKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(key + WS_GUID));
  return encodeBase64(new Uint8Array(digest));
}

export function newKey(): string {
  return encodeBase64(crypto.getRandomValues(new Uint8Array(16)));
}

/** A Sec-WebSocket-Key must be the base64 of 16 bytes. */
export function isValidKey(key: string | null): boolean {
  return key !== null && /^[A-Za-z0-9+/]{21}[AQgw]==$/.test(key);
}
