/** Test payloads and their digests. */
import { createHash } from "node:crypto";

/** Deterministic filler of `size` bytes (crypto.getRandomValues caps at 64 KiB per call). */
export function pattern(size: number, seed = 0): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + (i >>> 8) + seed) & 0xff;
  return out;
}

/** Hex SHA-256 of `data`. */
export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}
