/**
 * The supervisor's `onGone`: called for an entry a reload removed once nothing of it runs (after
 * its stop has finished, or at once for a failed one), never for a restart or at the process stop.
 */
import assert from "node:assert/strict";
import { resolveEntries } from "../../lib/config/precedence.ts";
import { type Launch, Supervisor } from "../../lib/config/supervisor.ts";
import type { Entry } from "../../lib/config/types.ts";
import { validateConfig } from "../../lib/config/validate.ts";
import { getLogger } from "../../lib/observe/log.ts";
import { deadline } from "../../lib/async.ts";
import { captureLogs } from "../helpers/logs.ts";

function entries(...tunnels: [string, number][]): Entry[] {
  const text = "tunnels:\n" +
    tunnels.map(([name, port]) => `  - name: ${name}\n    socks5-proxy: 127.0.0.1:${port}\n`)
      .join("");
  return resolveEntries(validateConfig(`relay: ns\nhyco: h\n${text}`, "up.yaml"), {});
}

/**
 * Entries that, once asked to stop, end only when the test calls `finish(name)` (a drain), and
 * names that cannot start.
 */
class Draining {
  readonly failStart = new Set<string>();
  readonly #finish = new Map<string, (() => void)[]>();

  launch: Launch = (entry, signal) => {
    if (this.failStart.has(entry.name)) return Promise.reject(new Error("address in use"));
    const done = new Promise<void>((resolve) => {
      signal.addEventListener("abort", () => {
        const queue = this.#finish.get(entry.name) ?? [];
        queue.push(resolve);
        this.#finish.set(entry.name, queue);
      }, { once: true });
    });
    return Promise.resolve({ done, check: () => ({ ready: true }) });
  };

  /** Ends the oldest stopping instance of `name`. */
  finish(name: string): void {
    const resolve = this.#finish.get(name)?.shift();
    assert.ok(resolve, `${name} is not stopping`);
    resolve();
  }

  /** Ends every stopping instance (the process stop). */
  finishAll(): void {
    for (const queue of this.#finish.values()) for (const resolve of queue.splice(0)) resolve();
  }
}

/** The `onGone` calls, in order, and a wait for the next one (with a deadline). */
class Gone {
  readonly names: string[] = [];
  #waiter: (() => void) | undefined;

  record = (name: string): void => {
    this.names.push(name);
    this.#waiter?.();
  };

  /** Resolves once `n` calls were made. */
  until(n: number): Promise<void> {
    const reached = new Promise<void>((resolve) => {
      this.#waiter = () => {
        if (this.names.length >= n) resolve();
      };
      this.#waiter();
    });
    return deadline(reached, 5_000, {
      onTimeout: () => new Error(`onGone: ${JSON.stringify(this.names)}, wanted ${n} calls`),
    });
  }
}

function supervisor(fakes: Draining, keepGoing = false) {
  const stop = new AbortController();
  const gone = new Gone();
  const sup = new Supervisor({
    launch: fakes.launch,
    keepGoing,
    logger: getLogger(),
    signal: stop.signal,
    onGone: gone.record,
  });
  const run = async () => {
    // Every entry sees the abort at once; then they all end.
    stop.abort();
    fakes.finishAll();
    await sup.run();
  };
  return { sup, gone, run };
}

Deno.test("supervisor: a removed entry is gone once it has stopped; a restart is not", async () => {
  await using logs = await captureLogs();
  const fakes = new Draining();
  const { sup, gone, run } = supervisor(fakes);
  await sup.start(entries(["a", 1], ["b", 2], ["c", 3]));
  // a removed, b restarted on a new port, c unchanged.
  await sup.reload(entries(["b", 4], ["c", 3]));
  assert.deepEqual(gone.names, [], "a is still draining");
  // b's old run ends first: had it counted, it would be the first call.
  fakes.finish("b");
  fakes.finish("a");
  await gone.until(1);
  assert.deepEqual(gone.names, ["a"], "b was restarted, not removed");
  assert.equal(logs.count(/msg="entry removed"/), 1);
  assert.equal(logs.count(/msg="entry removed" entry=a kind=socks5-proxy/), 1);
  await run();
  assert.deepEqual(gone.names, ["a"], "the process stop removes nothing");
});

Deno.test("supervisor: an entry added back while its old run drains is not gone", async () => {
  await using _logs = await captureLogs();
  const fakes = new Draining();
  const { sup, gone, run } = supervisor(fakes);
  await sup.start(entries(["a", 1], ["b", 2]));
  await sup.reload(entries(["b", 2]));
  await sup.reload(entries(["a", 1], ["b", 2]));
  fakes.finish("a");
  // The stop waits for every ending run, the old a's included.
  await run();
  assert.deepEqual(gone.names, [], "the old run ended while a was back in the file");
});

Deno.test("supervisor: a failed entry the file drops is gone at once", async () => {
  await using _logs = await captureLogs();
  const fakes = new Draining();
  fakes.failStart.add("b");
  const { sup, gone, run } = supervisor(fakes, true);
  await sup.start(entries(["a", 1], ["b", 2]));
  await sup.reload(entries(["a", 1], ["b", 2]));
  assert.deepEqual(gone.names, [], "still in the file: tried again, failed again");
  await sup.reload(entries(["a", 1]));
  assert.deepEqual(gone.names, ["b"]);
  assert.deepEqual([...sup.states()], [[{ name: "a", kind: "socks5-proxy" }, 1]]);
  await run();
  assert.deepEqual(gone.names, ["b"]);
});
