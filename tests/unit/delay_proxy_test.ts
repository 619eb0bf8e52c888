/** The benchmark's delay proxy: bytes exact and in order, at least D per trip, half-close, no leaks. */
import assert from "node:assert/strict";
import { startDelayProxy } from "../helpers/delay_proxy.ts";
import {
  randomBytes,
  readAll,
  readExactly,
  startEchoServer,
  startRequestReplyServer,
  writeAll,
} from "../helpers/servers.ts";

const local = (port: number) => ({ hostname: "127.0.0.1", port });
// Timers and clocks may round to the millisecond: allow that much, never more.
const SLACK_MS = 1;

Deno.test("delay proxy: many chunks in both directions arrive exact and in order", async () => {
  await using echo = startEchoServer();
  await using proxy = startDelayProxy({ delayMs: 5, upstream: local(echo.port) });
  const data = randomBytes(3 * 1024 * 1024 + 17);
  const conn = await Deno.connect(local(proxy.port));
  try {
    const send = (async () => {
      // Uneven writes, so chunk boundaries differ from the reads on the other side.
      for (let off = 0, step = 1; off < data.length; off += step, step = (step * 7 + 3) % 65_521) {
        await writeAll(conn, data.subarray(off, Math.min(data.length, off + step)));
      }
      await conn.closeWrite();
    })();
    const [back] = await Promise.all([readAll(conn), send]);
    assert.equal(back.length, data.length);
    assert.deepEqual(back, data);
  } finally {
    conn.close();
  }
  assert.equal(proxy.accepted, 1);
});

Deno.test("delay proxy: a new connection costs the handshake's RTT, each later trip 2·D", async () => {
  const d = 30;
  await using echo = startEchoServer();
  await using proxy = startDelayProxy({ delayMs: d, upstream: () => local(echo.port) });
  const started = performance.now();
  const conn = await Deno.connect(local(proxy.port));
  try {
    await writeAll(conn, new Uint8Array([1]));
    await readExactly(conn, 1);
    const first = performance.now() - started;
    assert.ok(first >= 4 * d - SLACK_MS, `first trip ${first.toFixed(1)} ms < 4·D`);
    const again = performance.now();
    await writeAll(conn, new Uint8Array([2]));
    assert.deepEqual(await readExactly(conn, 1), new Uint8Array([2]));
    const second = performance.now() - again;
    assert.ok(second >= 2 * d - SLACK_MS, `second trip ${second.toFixed(1)} ms < 2·D`);
  } finally {
    conn.close();
  }
});

Deno.test("delay proxy: back-to-back small writes come back in order, at least 2·D later", async () => {
  const d = 40;
  await using echo = startEchoServer();
  await using proxy = startDelayProxy({ delayMs: d, upstream: local(echo.port) });
  const conn = await Deno.connect(local(proxy.port));
  try {
    await writeAll(conn, new Uint8Array([0]));
    await readExactly(conn, 1);
    const started = performance.now();
    for (let i = 1; i <= 10; i++) await writeAll(conn, new Uint8Array([i]));
    const back = await readExactly(conn, 10);
    assert.deepEqual([...back], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const took = performance.now() - started;
    assert.ok(took >= 2 * d - SLACK_MS, `${took.toFixed(1)} ms < 2·D`);
  } finally {
    conn.close();
  }
});

Deno.test("delay proxy: a half-close reaches the upstream and the reply still comes back", async () => {
  await using server = startRequestReplyServer((req) =>
    new TextEncoder().encode(`got ${req.length}`)
  );
  await using proxy = startDelayProxy({ delayMs: 5, upstream: local(server.port) });
  const conn = await Deno.connect(local(proxy.port));
  try {
    await writeAll(conn, randomBytes(1000));
    await conn.closeWrite();
    assert.equal(new TextDecoder().decode(await readAll(conn)), "got 1000");
  } finally {
    conn.close();
  }
});

Deno.test("delay proxy: a client that goes away takes its upstream connection with it", async () => {
  using upstream = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await using proxy = startDelayProxy({ delayMs: 5, upstream: local(upstream.addr.port) });
  const client = await Deno.connect(local(proxy.port));
  await writeAll(client, new Uint8Array([9]));
  using far = await upstream.accept();
  assert.deepEqual(await readExactly(far, 1), new Uint8Array([9]));
  assert.equal(proxy.open, 1);
  client.close();
  // The client's EOF arrives as a half-close; answering it ends the link.
  assert.equal(await far.read(new Uint8Array(1)), null);
  await far.closeWrite();
  await proxy.close();
  assert.equal(proxy.open, 0);
});

Deno.test("delay proxy: close() cuts open connections and leaves nothing behind", async () => {
  await using echo = startEchoServer();
  const proxy = startDelayProxy({ delayMs: 50, upstream: local(echo.port) });
  const conns = await Promise.all([1, 2, 3].map(() => Deno.connect(local(proxy.port))));
  try {
    for (const c of conns) await writeAll(c, new Uint8Array([1]));
    await readExactly(conns[0], 1);
    await proxy.close();
    assert.equal(proxy.open, 0);
    for (const c of conns) await readAll(c).catch(() => new Uint8Array());
  } finally {
    for (const c of conns) c.close();
  }
});

Deno.test("delay proxy: an upstream that refuses ends the client's connection", async () => {
  const gone = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = gone.addr.port;
  gone.close();
  await using proxy = startDelayProxy({ delayMs: 5, upstream: local(port) });
  const conn = await Deno.connect(local(proxy.port));
  try {
    await writeAll(conn, new Uint8Array([1]));
    assert.equal((await readAll(conn)).length, 0);
  } finally {
    conn.close();
  }
});
