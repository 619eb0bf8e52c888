import assert from "node:assert/strict";
import { base32, newId } from "../../lib/relay/ids.ts";

Deno.test("base32 follows RFC 4648 without padding", () => {
  const enc = (s: string) => base32(new TextEncoder().encode(s));
  // RFC 4648 §10 test vectors, padding removed.
  assert.equal(enc(""), "");
  assert.equal(enc("f"), "MY");
  assert.equal(enc("fo"), "MZXQ");
  assert.equal(enc("foo"), "MZXW6");
  assert.equal(enc("foob"), "MZXW6YQ");
  assert.equal(enc("fooba"), "MZXW6YTB");
  assert.equal(enc("foobar"), "MZXW6YTBOI");
  assert.equal(base32(new Uint8Array(10).fill(255)), "7777777777777777");
  assert.equal(base32(new Uint8Array(10)), "AAAAAAAAAAAAAAAA");
});

Deno.test("newId is 16 base32 characters and unique", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const id = newId();
    assert.match(id, /^[A-Z2-7]{16}$/);
    seen.add(id);
  }
  assert.equal(seen.size, 1000);
});
