// lib/errors.ts firstLine: the one "first line of a message" (dial summaries, Entra headlines).
import assert from "node:assert/strict";
import { firstLine } from "../../lib/errors.ts";

Deno.test("firstLine keeps the first line, trailing blanks cut, leading ones kept", () => {
  assert.equal(firstLine("relay refused: 403 \nexplanation\nmore"), "relay refused: 403");
  assert.equal(firstLine("  one line\t"), "  one line");
  assert.equal(firstLine(""), "");
  assert.equal(firstLine("\nsecond"), "");
});
