import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHmac } from "node:crypto";
import {
  decodeBase64,
  decodeBase64Url,
  encodeBase64,
  encodeBase64Url,
} from "../../lib/crypto/base64.ts";
import { hmacSha256, importHmacKey } from "../../lib/crypto/hmac.ts";

const bytes = (...b: number[]) => new Uint8Array(b);

Deno.test("base64 and base64url agree with Node's Buffer", () => {
  for (const data of [bytes(), bytes(0), bytes(0xfb, 0xff), bytes(1, 2, 3, 0xfe, 0xff, 0x3e)]) {
    const b64 = Buffer.from(data).toString("base64");
    const url = Buffer.from(data).toString("base64url");
    assert.equal(encodeBase64(data), b64);
    assert.equal(encodeBase64Url(data), url);
    assert.deepEqual(decodeBase64(b64), data);
    assert.deepEqual(decodeBase64Url(url), data);
  }
  assert.deepEqual(decodeBase64Url("-_8"), bytes(0xfb, 0xff));
  assert.deepEqual(decodeBase64Url("-_8="), bytes(0xfb, 0xff));
});

Deno.test("base64 decoders return null on malformed text", () => {
  assert.equal(decodeBase64("a"), null);
  assert.equal(decodeBase64("!!!!"), null);
  assert.equal(decodeBase64Url("a"), null);
  assert.equal(decodeBase64Url("+/8"), null);
});

Deno.test("hmacSha256 keys with the secret's UTF-8 bytes, as Node's createHmac", async () => {
  const secret = "clé-ünïcode";
  const mac = await hmacSha256(secret, "sr\nse");
  assert.deepEqual(mac, new Uint8Array(createHmac("sha256", secret).update("sr\nse").digest()));
  const key = await importHmacKey(secret, ["verify"]);
  const data = new TextEncoder().encode("sr\nse");
  assert.equal(await crypto.subtle.verify("HMAC", key, mac, data), true);
  assert.equal(await crypto.subtle.verify("HMAC", key, mac, data.subarray(1)), false);
});
