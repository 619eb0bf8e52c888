import assert from "node:assert/strict";
import { DEMAND_WINDOW_MS, DemandWindow } from "../../lib/sender/demand.ts";

function clock() {
  let t = 10_000;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

Deno.test("demand: target is max(floor, min(cap, ceil(1.5 × peak)))", () => {
  const c = clock();
  const d = new DemandWindow(c.now);
  assert.equal(d.target(2, 16), 2, "no demand: the floor");
  assert.equal(d.target(0, 16), 0);
  const ends = Array.from({ length: 3 }, () => d.begin());
  assert.equal(d.current, 3);
  assert.equal(d.peak(), 3);
  assert.equal(d.target(2, 16), 5, "ceil(4.5)");
  assert.equal(d.target(2, 4), 4, "capped");
  for (const end of ends) end();
  assert.equal(d.current, 0);
  assert.equal(d.peak(), 3, "the peak is remembered");
  ends[0]();
  assert.equal(d.current, 0, "ending twice counts once");
});

Deno.test("demand: the peak expires after the window", () => {
  const c = clock();
  const d = new DemandWindow(c.now);
  const burst = Array.from({ length: 20 }, () => d.begin());
  for (const end of burst) end();
  c.advance(DEMAND_WINDOW_MS - 1_500);
  d.begin()();
  assert.equal(d.target(2, 16), 16, "still within the window");
  c.advance(1_500 + 1_000);
  assert.equal(d.peak(), 1, "the burst left the window; the later single open did not");
  assert.equal(d.target(2, 16), 2);
  c.advance(DEMAND_WINDOW_MS);
  assert.equal(d.peak(), 0);
  const open = d.begin();
  c.advance(3 * DEMAND_WINDOW_MS);
  assert.equal(d.peak(), 1, "an open still in progress counts");
  open();
});

Deno.test("demand: memory is bounded by slots, not by opens", () => {
  const c = clock();
  const d = new DemandWindow(c.now);
  for (let i = 0; i < 10_000; i++) d.begin()();
  assert.equal(d.peak(), 1);
  for (let i = 0; i < 200; i++) {
    c.advance(1_000);
    d.begin()();
  }
  assert.equal(d.peak(), 1);
});

Deno.test("demand: opens in progress plus the floor raise the target at once", () => {
  const c = clock();
  const d = new DemandWindow(c.now);
  const end = d.begin();
  assert.equal(d.target(4, 16), 5, "1 open + floor 4, above ceil(1.5 × 1)");
  assert.equal(d.target(4, 3), 4, "never below the floor, even over the cap");
  end();
  assert.equal(d.target(4, 16), 4, "ended: the peak rule (2) and the floor");
});
