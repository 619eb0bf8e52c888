import assert from "node:assert/strict";
import { delay } from "../../lib/async.ts";
import { IdleWatch } from "../../lib/agent/idle.ts";
import { withDeadline } from "../helpers/proc.ts";

const aborted = (s: AbortSignal) =>
  new Promise<void>((resolve) => s.addEventListener("abort", () => resolve(), { once: true }));

Deno.test("IdleWatch: fires after the period with nothing open", async () => {
  using idle = new IdleWatch(20);
  const started = performance.now();
  await withDeadline(aborted(idle.signal), 5_000, "idle");
  assert.ok(performance.now() - started >= 15);
});

Deno.test("IdleWatch: not while a connection is open; the clock restarts when the last ends", async () => {
  using idle = new IdleWatch(30);
  const leaveA = idle.enter();
  const leaveB = idle.enter();
  // Checking for an absence: the period passes three times over with connections open.
  await delay(100);
  assert.equal(idle.signal.aborted, false);
  leaveA();
  leaveA();
  await delay(100);
  assert.equal(idle.signal.aborted, false, "one connection still open");
  const left = performance.now();
  leaveB();
  await withDeadline(aborted(idle.signal), 5_000, "idle");
  assert.ok(performance.now() - left >= 25);
});

Deno.test("IdleWatch: 0 never fires and leaves no timer", async () => {
  using idle = new IdleWatch(0);
  idle.enter()();
  await delay(30);
  assert.equal(idle.signal.aborted, false);
});
