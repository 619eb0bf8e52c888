/** lib/net/accept_loop.ts and lib/net/listen.ts: the one accept loop and the local TCP bind. */
import assert from "node:assert/strict";
import { AztunnelError } from "../../lib/errors.ts";
import { ACCEPT_RETRY_MAX_MS, ACCEPT_RETRY_MIN_MS, acceptLoop } from "../../lib/net/accept_loop.ts";
import { listenTcp, tuneTcp } from "../../lib/net/listen.ts";

/** A listener whose accept() answers from a script: an error to throw or a conn to hand out. */
function scriptedListener(script: (Error | Deno.Conn)[]) {
  let closed = false;
  const pending = Promise.withResolvers<never>();
  pending.promise.catch(() => {}); // nobody may be waiting when it closes
  const fake = {
    get closed() {
      return closed;
    },
    accept(): Promise<Deno.Conn> {
      if (closed) return Promise.reject(new Deno.errors.BadResource("closed"));
      const next = script.shift();
      if (next === undefined) return pending.promise;
      return next instanceof Error ? Promise.reject(next) : Promise.resolve(next);
    },
    close() {
      if (closed) throw new Deno.errors.BadResource("closed twice");
      closed = true;
      pending.reject(new Deno.errors.BadResource("closed"));
    },
  };
  return fake;
}

function fakeConn(name: string): Deno.Conn & { closedCount: number } {
  const c = { name, closedCount: 0, close: () => c.closedCount++ };
  return c as unknown as Deno.Conn & { closedCount: number };
}

Deno.test("acceptLoop: failed accepts back off 5 ms doubling, a success resets it, then stop", async () => {
  const emfile = new Error("Too many open files (os error 24)");
  const a = fakeConn("a");
  const b = fakeConn("b");
  const listener = scriptedListener([emfile, emfile, emfile, a, emfile, b]);
  const stop = new AbortController();
  const retries: number[] = [];
  const conns: Deno.Conn[] = [];
  await acceptLoop(listener as unknown as Deno.Listener, (conn) => {
    conns.push(conn);
    if (conns.length === 2) stop.abort();
  }, {
    signal: stop.signal,
    onError: (err, retryMs) => {
      assert.equal(err, emfile);
      retries.push(retryMs);
    },
  });
  assert.deepEqual(retries, [ACCEPT_RETRY_MIN_MS, 10, 20, ACCEPT_RETRY_MIN_MS]);
  assert.deepEqual(conns, [a, b]);
  assert.equal(listener.closed, true, "the listener is closed on return");
});

Deno.test("acceptLoop: the back-off is capped at 1 s", async () => {
  const errors = Array.from({ length: 10 }, () => new Error("EMFILE"));
  const listener = scriptedListener(errors);
  const stop = new AbortController();
  const retries: number[] = [];
  await acceptLoop(listener as unknown as Deno.Listener, () => {}, {
    signal: stop.signal,
    onError: (_err, retryMs) => {
      retries.push(retryMs);
      // Stop during the long waits: the pause ends at once instead of running out.
      if (retryMs === ACCEPT_RETRY_MAX_MS) stop.abort();
    },
  });
  assert.deepEqual(retries, [5, 10, 20, 40, 80, 160, 320, 640, 1000]);
});

Deno.test("acceptLoop: a connection accepted as the stop begins is closed, not handed out", async () => {
  const stop = new AbortController();
  const late = fakeConn("late");
  const listener = scriptedListener([]);
  listener.accept = () => {
    stop.abort();
    return Promise.resolve(late);
  };
  let handed = 0;
  await acceptLoop(listener as unknown as Deno.Listener, () => handed++, { signal: stop.signal });
  assert.equal(handed, 0);
  assert.equal(late.closedCount, 1);
  assert.equal(listener.closed, true);
});

Deno.test("acceptLoop: an already aborted signal closes the listener without accepting", async () => {
  const listener = scriptedListener([fakeConn("never")]);
  let handed = 0;
  await acceptLoop(listener as unknown as Deno.Listener, () => handed++, {
    signal: AbortSignal.abort(),
  });
  assert.equal(handed, 0);
  assert.equal(listener.closed, true);
});

Deno.test("acceptLoop on a real listener: hands out connections and ends when stopped", async () => {
  const listener = listenTcp({ hostname: "127.0.0.1", port: 0 });
  const stop = new AbortController();
  const accepted: Deno.TcpConn[] = [];
  const { promise: got, resolve } = Promise.withResolvers<void>();
  const loop = acceptLoop(listener, (conn) => {
    tuneTcp(conn, true);
    accepted.push(conn);
    resolve();
  }, { signal: stop.signal });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  await got;
  stop.abort();
  await loop;
  assert.equal(accepted.length, 1);
  await assert.rejects(
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    Deno.errors.ConnectionRefused,
  );
  accepted[0].close();
  client.close();
});

Deno.test("listenTcp: a failed bind is listen_failed, naming the address", () => {
  const taken = listenTcp({ hostname: "127.0.0.1", port: 0 });
  try {
    assert.throws(
      () => listenTcp({ hostname: "127.0.0.1", port: taken.addr.port }),
      (err: unknown) =>
        err instanceof AztunnelError && err.code === "listen_failed" &&
        err.message.startsWith(`listen 127.0.0.1:${taken.addr.port}: `),
    );
  } finally {
    taken.close();
  }
});
