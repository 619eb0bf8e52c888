/** `up`'s SIGHUP handling (cmd/up_reload.ts): one reload at a time, later signals folded into one. */
import assert from "node:assert/strict";
import { onHangup } from "../../cmd/up_reload.ts";

/** Resolves once this process has seen `n` SIGHUPs (POSIX may merge two sent close together). */
function hangups(): { seen(n: number): Promise<void>; dispose(): void } {
  let count = 0;
  const waiters: [number, () => void][] = [];
  const handler = () => {
    count++;
    for (const [n, resolve] of waiters) if (count >= n) resolve();
  };
  Deno.addSignalListener("SIGHUP", handler);
  // Signal listeners do not keep the event loop alive by themselves.
  const keepAlive = setInterval(() => {}, 60_000);
  return {
    seen: (n) => new Promise((resolve) => count >= n ? resolve() : waiters.push([n, resolve])),
    dispose: () => {
      clearInterval(keepAlive);
      Deno.removeSignalListener("SIGHUP", handler);
    },
  };
}

Deno.test({
  name: "hangup: SIGHUPs during a reload queue exactly one more",
  ignore: Deno.build.os === "windows",
  async fn() {
    const gates: PromiseWithResolvers<void>[] = [];
    const stop = onHangup(() => {
      const gate = Promise.withResolvers<void>();
      gates.push(gate);
      return gate.promise;
    });
    const seen = hangups();
    try {
      Deno.kill(Deno.pid, "SIGHUP");
      await seen.seen(1);
      assert.equal(gates.length, 1);
      Deno.kill(Deno.pid, "SIGHUP");
      Deno.kill(Deno.pid, "SIGHUP");
      await seen.seen(2);
      assert.equal(gates.length, 1, "no second reload while the first runs");
      gates[0].resolve();
      await gates[0].promise;
      await Promise.resolve();
      assert.equal(gates.length, 2, "the queued reload starts once the first ends");
      gates[1].resolve();
      await gates[1].promise;
      await Promise.resolve();
      assert.equal(gates.length, 2, "and only one");
    } finally {
      seen.dispose();
      stop();
    }
  },
});
