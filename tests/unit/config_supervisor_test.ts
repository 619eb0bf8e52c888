/** The `up` supervisor with fake entries: start-up failures, --keep-going, reloads and the stop. */
import assert from "node:assert/strict";
import { resolveEntries } from "../../lib/config/precedence.ts";
import { type Launch, type RunningEntry, Supervisor } from "../../lib/config/supervisor.ts";
import type { Entry } from "../../lib/config/types.ts";
import { validateConfig } from "../../lib/config/validate.ts";
import { getLogger } from "../../lib/observe/log.ts";
import { captureLogs } from "../helpers/logs.ts";

function entries(text: string): Entry[] {
  return resolveEntries(validateConfig(`relay: ns\nhyco: h\n${text}`, "up.yaml"), {});
}

const TWO = `tunnels:
  - name: a
    socks5-proxy: 127.0.0.1:1
  - name: b
    socks5-proxy: 127.0.0.1:2
`;

/** Fake entries: each runs until its signal aborts; `failStart` names entries that cannot start. */
class Fakes {
  readonly failStart = new Set<string>();
  readonly started: string[] = [];
  readonly stopped: string[] = [];
  readonly updated: string[] = [];
  readonly crash = new Map<string, (err: Error) => void>();

  launch: Launch = (entry, signal) => {
    if (this.failStart.has(entry.name)) return Promise.reject(new Error("address in use"));
    this.started.push(entry.name);
    let ended = false;
    const done = new Promise<void>((resolve, reject) => {
      this.crash.set(entry.name, (err) => {
        ended = true;
        reject(err);
      });
      signal.addEventListener("abort", () => {
        if (ended) return;
        this.stopped.push(entry.name);
        resolve();
      }, { once: true });
    });
    const handle: RunningEntry = {
      done,
      check: () => ({ ready: true }),
      update: (next) => {
        this.updated.push(next.name);
        return true;
      },
    };
    return Promise.resolve(handle);
  };
}

function supervisor(fakes: Fakes, keepGoing = false) {
  const stop = new AbortController();
  const sup = new Supervisor({
    launch: fakes.launch,
    keepGoing,
    logger: getLogger(),
    signal: stop.signal,
  });
  return { sup, stop };
}

Deno.test("supervisor: one entry failing to start stops the others and names it", async () => {
  await using logs = await captureLogs();
  const fakes = new Fakes();
  fakes.failStart.add("b");
  const { sup } = supervisor(fakes);
  await assert.rejects(sup.start(entries(TWO)), (err: Error & { code?: string }) => {
    assert.equal(err.code, "entry_failed");
    assert.equal(err.message, 'socks5-proxy "b": failed to start: address in use');
    return true;
  });
  assert.deepEqual(fakes.stopped, ["a"]);
  assert.match(
    logs.lines.join(""),
    /msg="entry failed" entry=b kind=socks5-proxy error="address in use"/,
  );
});

Deno.test("supervisor: --keep-going runs the rest and readiness names the failed entry", async () => {
  await using _logs = await captureLogs();
  const fakes = new Fakes();
  fakes.failStart.add("b");
  const { sup, stop } = supervisor(fakes, true);
  await sup.start(entries(TWO));
  assert.deepEqual(sup.readiness(), {
    ready: false,
    reason: "failed entries: b (failed to start: address in use)",
  });
  assert.deepEqual([...sup.states()], [
    [{ name: "a", kind: "socks5-proxy" }, 1],
    [{ name: "b", kind: "socks5-proxy" }, 0],
  ]);
  // Fixed and reloaded: the failed entry is tried again.
  fakes.failStart.clear();
  await sup.reload(entries(TWO));
  assert.deepEqual(sup.readiness(), { ready: true });
  assert.deepEqual(fakes.started, ["a", "b"]);
  stop.abort();
  await sup.run();
  assert.deepEqual(fakes.stopped.sort(), ["a", "b"]);
});

Deno.test("supervisor: a reload stops, starts, restarts and updates as planned", async () => {
  await using logs = await captureLogs();
  const fakes = new Fakes();
  const { sup, stop } = supervisor(fakes);
  const first = `listeners:\n  - name: l\n    allow: ["127.0.0.1:1"]\n${TWO}`;
  await sup.start(entries(first));
  const next = `listeners:\n  - name: l\n    allow: ["127.0.0.1:2"]\n` +
    `tunnels:\n  - name: b\n    socks5-proxy: 127.0.0.1:3\n  - name: c\n    socks5-proxy: 127.0.0.1:4\n`;
  await sup.reload(entries(next));
  assert.deepEqual(fakes.updated, ["l"]);
  assert.deepEqual(fakes.stopped.sort(), ["a", "b"]);
  assert.deepEqual(fakes.started, ["l", "a", "b", "c", "b"]);
  await logs.waitFor(/msg="config reloaded" started=c stopped=a restarted=b updated=l/);
  stop.abort();
  await sup.run();
});

Deno.test("supervisor: an entry that ends by itself fails the run, or only itself with keep-going", async () => {
  await using _logs = await captureLogs();
  const fakes = new Fakes();
  const { sup } = supervisor(fakes);
  await sup.start(entries(TWO));
  fakes.crash.get("a")!(new Error("relay said 401"));
  await assert.rejects(sup.run(), /socks5-proxy "a" failed/);
  assert.deepEqual(fakes.stopped, ["b"]);

  const kept = new Fakes();
  const k = supervisor(kept, true);
  await k.sup.start(entries(TWO));
  kept.crash.get("a")!(new Error("relay said 401"));
  await Promise.resolve();
  assert.deepEqual(k.sup.readiness(), {
    ready: false,
    reason: "failed entries: a (relay said 401)",
  });
  k.stop.abort();
  await k.sup.run();
  assert.deepEqual(kept.stopped, ["b"]);
});
