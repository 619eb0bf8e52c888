import assert from "node:assert/strict";
import { constantTimeEqual } from "../../lib/crypto/constant_time.ts";

const bytes = (s: string) => new TextEncoder().encode(s);

Deno.test("constantTimeEqual: equal bytes only; a prefix or a longer input is not equal", () => {
  assert.equal(constantTimeEqual(bytes("secret"), bytes("secret")), true);
  assert.equal(constantTimeEqual(new Uint8Array(0), new Uint8Array(0)), true);
  assert.equal(constantTimeEqual(bytes("secreT"), bytes("secret")), false);
  assert.equal(constantTimeEqual(bytes("secret"), bytes("secret!")), false);
  assert.equal(constantTimeEqual(bytes("secret!"), bytes("secret")), false);
  assert.equal(constantTimeEqual(new Uint8Array(0), bytes("secret")), false);
  // A missing byte is not a zero byte.
  assert.equal(constantTimeEqual(bytes("ab"), new Uint8Array([97, 98, 0])), false);
});
