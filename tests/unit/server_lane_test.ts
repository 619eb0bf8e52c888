import assert from "node:assert/strict";
import { DelayLane, DirectLane, type LaneItem } from "../../lib/server/lane.ts";

const data = (size: number): LaneItem => ({ kind: "data", data: "x".repeat(size), size });
const CLOSE: LaneItem = { kind: "close", code: 1000, reason: "" };

Deno.test("DirectLane delivers each item before the push resolves", async () => {
  const got: LaneItem[] = [];
  const lane = new DirectLane((item) => (got.push(item), Promise.resolve()));
  await lane.push(data(1));
  assert.equal(got.length, 1);
  await lane.push(CLOSE);
  await lane.finish();
  assert.deepEqual(got, [data(1), CLOSE]);
});

Deno.test("DelayLane delivers in order after the delay, within its byte budget", async () => {
  const got: { item: LaneItem; at: number }[] = [];
  const t0 = performance.now();
  const stop = new AbortController();
  const lane = new DelayLane(
    (item) => (got.push({ item, at: performance.now() - t0 }), Promise.resolve()),
    30,
    15,
    stop.signal,
  );
  await lane.push(data(10));
  // The second message does not fit the budget until the first one has gone out.
  await lane.push(data(10));
  assert.equal(got.length, 1);
  await lane.push(CLOSE);
  await lane.finish();
  assert.deepEqual(got.map((g) => g.item), [data(10), data(10), CLOSE]);
  assert.ok(got[0].at >= 29, `delivered after ${got[0].at} ms`);
  assert.ok(got[1].at >= 58, `delivered after ${got[1].at} ms`);
});

Deno.test("DelayLane stops delivering once its stop signal aborts", async () => {
  const got: LaneItem[] = [];
  const stop = new AbortController();
  const lane = new DelayLane(
    (item) => (got.push(item), Promise.resolve()),
    10_000,
    100,
    stop.signal,
  );
  await lane.push(data(1));
  stop.abort();
  await lane.finish();
  await lane.push(data(1));
  assert.deepEqual(got, []);
});
