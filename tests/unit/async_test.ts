import assert from "node:assert/strict";
import { abortable, closeQuietly, deadline, DeadlineError, delay, pause } from "../../lib/async.ts";

Deno.test("delay resolves after its time and rejects with the abort reason", async () => {
  await delay(1);
  const c = new AbortController();
  const p = delay(60_000, { signal: c.signal });
  c.abort(new Error("stop"));
  await assert.rejects(p, { message: "stop" });
  await assert.rejects(delay(1, { signal: AbortSignal.abort(new Error("early")) }), {
    message: "early",
  });
});

Deno.test("pause resolves early on abort and never rejects", async () => {
  const c = new AbortController();
  const p = pause(60_000, c.signal);
  c.abort(new Error("stop"));
  assert.deepEqual(await p, undefined);
});

Deno.test("abortable gives up on abort while the promise runs on", async () => {
  const c = new AbortController();
  let resolve!: (v: number) => void;
  const inner = new Promise<number>((r) => resolve = r);
  const p = abortable(inner, c.signal);
  c.abort(new Error("gone"));
  await assert.rejects(p, { message: "gone" });
  resolve(7);
  assert.deepEqual(await inner, 7);
  assert.deepEqual(await abortable(Promise.resolve(3), new AbortController().signal), 3);
  // An already-aborted signal: the abandoned promise's later rejection is not unhandled.
  const late = new Promise<never>((_, reject) => setTimeout(() => reject(new Error("late")), 1));
  await assert.rejects(abortable(late, AbortSignal.abort(new Error("first"))), {
    message: "first",
  });
  await assert.rejects(late, { message: "late" });
});

Deno.test("deadline: the value in time, a DeadlineError (code timeout) or onTimeout's error after", async () => {
  assert.deepEqual(await deadline(Promise.resolve("v"), 1000), "v");
  const never = new Promise<never>(() => {});
  await assert.rejects(
    deadline(never, 5),
    (err) => err instanceof DeadlineError && err.code === "timeout",
  );
  await assert.rejects(deadline(never, 5, { onTimeout: () => new RangeError("late") }), RangeError);
  const c = new AbortController();
  const p = deadline(never, 60_000, { signal: c.signal });
  c.abort(new Error("cancelled"));
  await assert.rejects(p, { message: "cancelled" });
  await assert.rejects(deadline(Promise.reject(new Error("own")), 1000), { message: "own" });
});

Deno.test("closeQuietly ignores a second close and nullish values", () => {
  let closes = 0;
  const x = {
    close() {
      closes++;
      if (closes > 1) throw new Deno.errors.BadResource("closed");
    },
  };
  closeQuietly(x);
  closeQuietly(x);
  closeQuietly(null);
  closeQuietly(undefined);
  assert.deepEqual(closes, 2);
});
