import assert from "node:assert/strict";
import { WindowBudget } from "../../lib/mux/budget.ts";

Deno.test("mux budget: takes what is left, never more; what is given back returns, up to the limit", () => {
  const b = new WindowBudget(100);
  assert.equal(b.take(60), 60);
  assert.equal(b.take(60), 40);
  assert.equal(b.take(1), 0);
  b.give(30);
  assert.equal(b.left, 30);
  b.give(500);
  assert.equal(b.left, 100, "never above the limit");
  assert.equal(b.take(-5), 0);
});
