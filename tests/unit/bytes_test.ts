import assert from "node:assert/strict";
import { concatBytes } from "../../lib/bytes.ts";

Deno.test("concatBytes: the parts in order, in a new buffer; none gives an empty one", () => {
  const a = new Uint8Array([1, 2]);
  const out = concatBytes([a, new Uint8Array(0), new Uint8Array([3])]);
  assert.deepEqual([...out], [1, 2, 3]);
  out[0] = 9;
  assert.equal(a[0], 1, "a copy, not a view");
  assert.equal(concatBytes([]).length, 0);
});
