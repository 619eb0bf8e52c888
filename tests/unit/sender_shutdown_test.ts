/**
 * Stopping a service: the first SIGINT/SIGTERM drains, the second forces (cmd/common.ts), and the
 * tracker abandons tunnels still opening, waits for bridged ones and logs what it does.
 */
import assert from "node:assert/strict";
import { shutdownSignal } from "../../cmd/shutdown.ts";
import type { Attrs, Logger } from "../../lib/observe/log.ts";
import { TaskTracker } from "../../lib/tunnel/tracker.ts";

/** A Logger that keeps `level msg {attrs}` entries. */
function captureLogger(): Logger & { entries: [string, string, Attrs][] } {
  const entries: [string, string, Attrs][] = [];
  const make = (bound: Attrs): Logger => ({
    debug: (msg, attrs) => entries.push(["DEBUG", msg, { ...bound, ...attrs }]),
    info: (msg, attrs) => entries.push(["INFO", msg, { ...bound, ...attrs }]),
    warn: (msg, attrs) => entries.push(["WARN", msg, { ...bound, ...attrs }]),
    error: (msg, attrs) => entries.push(["ERROR", msg, { ...bound, ...attrs }]),
    with: (attrs) => make({ ...bound, ...attrs }),
  });
  return Object.assign(make({}), { entries });
}

/** A signal source the test fires by hand instead of the process's signal handlers. */
function fakeSignals() {
  const handlers = new Set<() => void>();
  return {
    subscribe(h: () => void) {
      handlers.add(h);
      return () => handlers.delete(h);
    },
    fire() {
      for (const h of handlers) h();
    },
    get listening() {
      return handlers.size;
    },
  };
}

/** A task that ends when `signal` aborts (or when `end` is called). */
function taskUntil(signal: AbortSignal) {
  const { promise, resolve } = Promise.withResolvers<void>();
  signal.addEventListener("abort", () => resolve(), { once: true });
  return { promise, end: resolve };
}

Deno.test("shutdownSignal: the first signal stops, the second forces, later ones are ignored", () => {
  const src = fakeSignals();
  const stop = shutdownSignal(src);
  assert.equal(src.listening, 1);
  assert.equal(stop.signal.aborted, false);
  src.fire();
  assert.equal(stop.signal.aborted, true);
  assert.equal(stop.force.aborted, false);
  assert.equal((stop.signal.reason as DOMException).name, "AbortError");
  src.fire();
  assert.equal(stop.force.aborted, true);
  src.fire();
  stop.dispose();
  assert.equal(src.listening, 0);
});

Deno.test("tracker: tunnels still opening are abandoned at once, bridged ones drain, then 'drain complete'", async () => {
  const log = captureLogger();
  const tracker = new TaskTracker();
  const opening = taskUntil(tracker.stopSignal);
  tracker.track(opening.promise);
  const leave = tracker.enterBridge();
  const bridged = taskUntil(tracker.cancelSignal);
  tracker.track(bridged.promise.finally(leave));
  assert.equal(tracker.bridged, 1);
  assert.equal(tracker.size, 2);

  const draining = tracker.drain(10_000, { logger: log });
  assert.equal(tracker.stopSignal.aborted, true);
  await opening.promise;
  assert.equal(tracker.cancelSignal.aborted, false, "a bridged tunnel may still finish");
  bridged.end();
  await draining;
  assert.equal(tracker.cancelSignal.aborted, false);
  assert.deepEqual(log.entries, [
    ["INFO", "draining tunnels", { count: 1, timeout: "10s" }],
    ["INFO", "drain complete", {}],
  ]);
});

Deno.test("tracker: with nothing bridged the drain is silent", async () => {
  const log = captureLogger();
  const tracker = new TaskTracker();
  tracker.track(taskUntil(tracker.stopSignal).promise);
  await tracker.drain(10_000, { logger: log });
  assert.deepEqual(log.entries, []);
});

Deno.test("tracker: at the deadline the rest is cancelled and the count logged", async () => {
  const log = captureLogger();
  const tracker = new TaskTracker();
  for (let i = 0; i < 2; i++) {
    const leave = tracker.enterBridge();
    tracker.track(taskUntil(tracker.cancelSignal).promise.finally(leave));
  }
  await tracker.drain(20, { logger: log });
  assert.equal(tracker.cancelSignal.aborted, true);
  assert.equal(tracker.size, 0);
  assert.equal(tracker.bridged, 0);
  assert.deepEqual(log.entries, [
    ["INFO", "draining tunnels", { count: 2, timeout: "20ms" }],
    ["INFO", "drain timed out, closing 2 tunnels", { count: 2 }],
  ]);
});

Deno.test("tracker: a second signal cancels at once, long before the deadline", async () => {
  const log = captureLogger();
  const tracker = new TaskTracker();
  const leave = tracker.enterBridge();
  tracker.track(taskUntil(tracker.cancelSignal).promise.finally(leave));
  const force = new AbortController();
  const started = performance.now();
  const draining = tracker.drain(60_000, { logger: log, force: force.signal });
  force.abort();
  await draining;
  assert.ok(performance.now() - started < 5_000);
  assert.equal(tracker.cancelSignal.aborted, true);
  assert.deepEqual(log.entries, [
    ["INFO", "draining tunnels", { count: 1, timeout: "1m0s" }],
    ["INFO", "second signal, closing 1 tunnels now", { count: 1 }],
  ]);
});

Deno.test("tracker: a force that came before the drain started cancels right away", async () => {
  const tracker = new TaskTracker();
  const leave = tracker.enterBridge();
  tracker.track(taskUntil(tracker.cancelSignal).promise.finally(leave));
  await tracker.drain(60_000, { force: AbortSignal.abort() });
  assert.equal(tracker.cancelSignal.aborted, true);
  assert.equal(tracker.size, 0);
});

Deno.test("tracker: enterBridge's release counts once", () => {
  const tracker = new TaskTracker();
  const leave = tracker.enterBridge();
  leave();
  leave();
  assert.equal(tracker.bridged, 0);
});
