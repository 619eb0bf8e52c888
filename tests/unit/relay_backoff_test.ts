import assert from "node:assert/strict";
import { backoffDelay } from "../../lib/relay/backoff.ts";

Deno.test("sender dial schedule is 1, 2, 4, then 5 s", () => {
  const opts = { baseMs: 1000, maxMs: 5000 };
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5].map((n) => backoffDelay(n, opts)),
    [1000, 2000, 4000, 5000, 5000, 5000],
  );
});

Deno.test("control reconnect doubles from 1 s to 30 s", () => {
  const opts = { baseMs: 1000, maxMs: 30_000 };
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 50].map((n) => backoffDelay(n, opts)),
    [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000],
  );
});

Deno.test("jitter spreads within ±fraction and never passes the cap", () => {
  const base = { baseMs: 1000, maxMs: 30_000, jitter: 0.2 };
  assert.equal(backoffDelay(0, { ...base, random: () => 0 }), 800);
  assert.equal(backoffDelay(0, { ...base, random: () => 0.5 }), 1000);
  assert.equal(backoffDelay(0, { ...base, random: () => 0.999999 }), 1200);
  assert.equal(backoffDelay(10, { ...base, random: () => 0.999999 }), 30_000);
  assert.equal(backoffDelay(10, { ...base, random: () => 0 }), 24_000);
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(2, base);
    assert.ok(d >= 3200 && d <= 4800, String(d));
  }
});
