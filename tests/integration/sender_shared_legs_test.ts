/**
 * Shared legs (issue 10, bursts) against relay-server and the real listener: a burst beyond the
 * ready legs rides one shared leg, each tunnel byte-exact with its own flow control and early data;
 * a refused stream leaves the leg serving; an idle shared leg is recycled; `streams: 0` shares
 * nothing; a lost stream or leg is retried elsewhere (a 1013 straight to a cold dial). Opens are
 * started in one turn so which client gets which leg is deterministic.
 */
import assert from "node:assert/strict";
import { runListener } from "../../lib/listener/service.ts";
import { getLogger } from "../../lib/observe/log.ts";
import { ClientInput } from "../../lib/sender/early_data.ts";
import { EnvelopeRejected, type OpenedTunnel } from "../../lib/sender/open_tunnel.ts";
import { TunnelSource, type TunnelSourceOptions } from "../../lib/sender/tunnel_source.ts";
import { parseAllowlist } from "../../lib/tunnel/allowlist.ts";
import { bridge } from "../../lib/tunnel/bridge.ts";
import { pattern, sha256 } from "../helpers/bytes.ts";
import { PoolRecorder } from "../helpers/pool_recorder.ts";
import { readAll, readExactly, sendAndReadAll, tcpPair, writeAll } from "../helpers/servers.ts";
import { echo, type Stack, startStack, startTarget } from "../helpers/tunnel_stack.ts";

/** A target that answers the sha256 of everything it got, once the client's write side ends. */
async function hashReply(conn: Deno.TcpConn): Promise<void> {
  const got = await readAll(conn);
  await writeAll(conn, new TextEncoder().encode(sha256(got)));
  await conn.closeWrite();
}

interface Rig {
  stack: Stack;
  source: TunnelSource;
  pool: PoolRecorder;
}

/** A stack, a TunnelSource with a recorded pool; all of it closed after `body`. */
async function withSource(
  pool: NonNullable<TunnelSourceOptions["pool"]>,
  body: (rig: Rig) => Promise<void>,
  listener: Parameters<typeof startStack>[0] = {},
): Promise<void> {
  await using stack = await startStack(listener);
  const recorder = new PoolRecorder();
  const source = new TunnelSource({
    relay: stack.relay,
    logger: getLogger({ side: "sender" }),
    pool,
    metrics: recorder,
  });
  try {
    await body({ stack, source, pool: recorder });
  } finally {
    await source.close();
  }
}

/**
 * Uploads `data` through `tunnel` (the client writes it all, then half-closes) and returns what
 * came back; `input` is the bridge's side when the open used early data.
 */
async function upload(
  tunnel: OpenedTunnel,
  client: Deno.TcpConn,
  local: Deno.TcpConn | ClientInput,
  data: Uint8Array,
): Promise<string> {
  const bridged = bridge(local, tunnel.socket, { halfClose: true, pingIntervalMs: 0 });
  try {
    return new TextDecoder().decode(await sendAndReadAll(client, data));
  } finally {
    client.close();
    await bridged;
  }
}

/** Resolves once `n` legs are ready beside the one shared leg (taken from the first ready one). */
function warmed(rig: Rig, n: number): Promise<void> {
  return rig.pool.until(
    (r) => r.ready >= n && rig.source.shared?.carriers === 1,
    `${n} ready legs and a shared one`,
  );
}

/** One tunnel opened and used alone: the first is cold and starts the pool warming. */
async function coldFirst(rig: Rig, target: string, want = sha256): Promise<void> {
  const [client, local] = await tcpPair();
  const tunnel = await rig.source.open(target);
  const data = new TextEncoder().encode("cold");
  assert.equal(await upload(tunnel, client, local, data), want(data));
}

/** What an echo target sends back, as text. */
const echoed = (data: Uint8Array) => new TextDecoder().decode(data);

Deno.test("shared: a burst beyond the ready legs rides one shared leg, every tunnel byte-exact", async () => {
  await using target = startTarget(hashReply);
  await withSource({ min: 2, max: 4 }, async (rig) => {
    const { source, pool } = rig;
    await coldFirst(rig, target.addr);
    await warmed(rig, 2);

    // Twelve at once: two take the ready legs, ten share the leg kept for them.
    const opens = Array.from({ length: 12 }, () => source.open(target.addr));
    const tunnels = await Promise.all(opens);
    assert.deepEqual([pool.hits, pool.misses, pool.muxStreams], [12, 1, 10]);

    // 300 KiB each, more than a stream's window: flow control moves all of them.
    const sums = await Promise.all(tunnels.map(async (tunnel, i) => {
      const [client, local] = await tcpPair();
      const data = pattern(300 * 1024, i);
      return [await upload(tunnel, client, local, data), sha256(data)];
    }));
    for (const [got, want] of sums) assert.equal(got, want);
    assert.equal(rig.stack.logs.count(/level=WARN.*side=sender/), 0, rig.stack.logs.lines.join(""));
  });
});

Deno.test("shared: early data on a shared stream is byte-exact and counted", async () => {
  await using target = startTarget(hashReply);
  await withSource({ min: 1, max: 2 }, async (rig) => {
    const { source, pool } = rig;
    await coldFirst(rig, target.addr);
    await warmed(rig, 1);
    const own = source.open(target.addr);
    const [client, local] = await tcpPair();
    const data = pattern(40 * 1024, 3);
    // The client's bytes are there before the open: the shared stream sends them with it.
    await writeAll(client, data);
    await client.closeWrite();
    const input = new ClientInput(local);
    const shared = await source.open(target.addr, { earlyData: input });
    assert.equal(pool.muxStreams, 1);
    assert.equal(shared.earlyBytes, data.length, "all of it went ahead of the answer");
    const bridged = bridge(input, shared.socket, { halfClose: true, pingIntervalMs: 0 });
    assert.equal(new TextDecoder().decode(await readAll(client)), sha256(data));
    client.close();
    await bridged;
    (await own).socket.closeNow();
  });
});

Deno.test("shared: a refused stream fails alone; the shared leg serves the next", async () => {
  await using target = startTarget(hashReply);
  const allowlist = parseAllowlist([target.addr]);
  await withSource({ min: 1, max: 2 }, async (rig) => {
    const { source, pool } = rig;
    await coldFirst(rig, target.addr);
    await warmed(rig, 1);
    const own = source.open(target.addr);
    const refused = source.open("127.0.0.1:1");
    const good = source.open(target.addr);
    await assert.rejects(refused, (err: unknown) => {
      assert.ok(err instanceof EnvelopeRejected, String(err));
      return true;
    });
    const [client, local] = await tcpPair();
    const data = pattern(1000, 1);
    assert.equal(await upload(await good, client, local, data), sha256(data));
    assert.equal(pool.muxStreams, 2, "both rode the shared leg");
    assert.equal(source.shared?.carriers, 1, "and it still stands");
    (await own).socket.closeNow();
  }, { allowlist });
});

Deno.test("shared: an idle shared leg is recycled at the recycle age and another taken", async () => {
  await using target = startTarget(hashReply);
  const timings = { recycleAgeMs: 400, pingIntervalMs: 60_000 };
  await withSource({ min: 1, max: 2, timings }, async (rig) => {
    const logs = rig.stack.logs;
    await coldFirst(rig, target.addr);
    await logs.waitFor(/msg="shared leg ended"/);
    await logs.waitFor(/msg="warm leg shared"/, undefined, 2);
    assert.ok(logs.count(/msg="shared leg ended".*side=listener/) >= 1, "the listener saw it go");
  });
});

Deno.test("shared: streams 0 shares nothing and offers no mux", async () => {
  await using target = startTarget(hashReply);
  await withSource({ min: 1, max: 2, streams: 0 }, async (rig) => {
    const { source, pool } = rig;
    assert.equal(source.shared, undefined);
    await coldFirst(rig, target.addr);
    await pool.until((r) => r.ready >= 1, "1 ready leg");
    // One more than are ready: the last waits for a warm dial of its own.
    const n = pool.ready + 1;
    const tunnels = await Promise.all(Array.from({ length: n }, () => source.open(target.addr)));
    assert.deepEqual([pool.hits, pool.misses, pool.muxStreams], [n - 1, 2, 0]);
    for (const t of tunnels) assert.ok(!t.features.includes("mux"), t.features.join(","));
    for (const t of tunnels) t.socket.closeNow();
  });
});

/** A second listener on the same relay and hyco; resolves once its control channel is up. */
async function secondListener(stack: Stack) {
  const ac = new AbortController();
  const up = Promise.withResolvers<void>();
  const running = runListener({
    endpoint: stack.relay.endpoint,
    entity: stack.relay.entity,
    tokens: stack.relay.tokens,
    allowlist: null,
    listenerId: "LISTENERBBBBBBBB",
    signal: ac.signal,
    logger: getLogger({ side: "listener-b" }),
    onConnectedChange: (isUp) => isUp && up.resolve(),
    handler: { pingIntervalMs: 0 },
  });
  await up.promise;
  return { stop: () => (ac.abort(new DOMException("stop", "AbortError")), running) };
}

Deno.test("shared: a stream the stopping listener refuses is retried elsewhere, not on that leg", async () => {
  await using target = startTarget(echo);
  // No second chance at warming once the stop drops the held legs: the retry must go cold.
  const timings = { backoffBaseMs: 60_000, backoffMaxMs: 60_000 };
  await withSource({ min: 1, max: 1, timings }, async (rig) => {
    const { source, stack } = rig;
    await coldFirst(rig, target.addr, echoed);
    await warmed(rig, 1);
    // One tunnel on the ready leg, one on the shared leg; both stay open through the stop.
    const [own, onShared] = await Promise.all([source.open(target.addr), source.open(target.addr)]);
    assert.equal(rig.pool.muxStreams, 1);
    // The replacement for the leg t1 took is held by the first listener before the second starts.
    await rig.pool.until((r) => r.ready >= 1, "the replacement leg");
    const b = await secondListener(stack);
    const stopping = stack.stopListener();
    await stack.logs.waitFor(/msg="warm leg closed, listener stopping"/);
    const third = await source.open(target.addr);
    assert.equal(third.listenerId, "LISTENERBBBBBBBB", "served by the listener still running");
    assert.match(
      await stack.logs.waitFor(/msg="shared leg lost"/),
      /close="?1001/,
    );
    for (const t of [own, onShared, third]) await t.socket.close(1000, "done");
    await stopping;
    await b.stop();
  });
});

Deno.test("shared: close() waits for the shared leg's last tunnel, then the leg goes", async () => {
  await using target = startTarget(echo);
  await withSource({ min: 1, max: 2 }, async (rig) => {
    const { source, stack } = rig;
    await coldFirst(rig, target.addr, echoed);
    await warmed(rig, 1);
    const [own, onShared] = await Promise.all([source.open(target.addr), source.open(target.addr)]);
    assert.equal(rig.pool.muxStreams, 1);
    let closed = false;
    const closing = source.close().then(() => closed = true);
    // A round trip on the shared stream: close() is still waiting for it.
    const [client, local] = await tcpPair();
    const bridged = bridge(local, onShared.socket, { halfClose: true, pingIntervalMs: 0 });
    await writeAll(client, new TextEncoder().encode("still here"));
    assert.equal(new TextDecoder().decode(await readExactly(client, 10)), "still here");
    assert.equal(closed, false, "close() did not wait for the busy shared leg");
    client.close();
    await bridged;
    await closing;
    await stack.logs.waitFor(/msg="shared leg ended" side=listener/);
    await own.socket.close(1000, "done");
  });
});

Deno.test("retry: a leg closed 1013 at --max-connections sends the client to a cold dial, not another leg", async () => {
  await using target = startTarget(echo);
  await withSource({ min: 2, max: 2 }, async (rig) => {
    const { source, stack } = rig;
    await coldFirst(rig, target.addr, echoed);
    await warmed(rig, 2);
    const holder = await source.open(target.addr);
    const second = source.open(target.addr);
    await stack.logs.waitFor(/msg="warm leg waits for a connection slot"/);
    // The leg waits out --connect-timeout (300 ms) and is closed 1013; the cold dial that follows
    // gets 503 until the holder leaves.
    await stack.logs.waitFor(/msg="envelope exchange failed".*close_code=1013/);
    await holder.socket.close(1000, "done");
    const tunnel = await second;
    const id = tunnel.bridgeId;
    const tried = stack.logs.count(new RegExp(`msg="warm leg used" side=sender bridge_id=${id}`));
    assert.equal(tried, 1, "one warm leg tried, then cold");
    assert.equal(
      stack.logs.count(new RegExp(`msg="shared leg used" side=sender bridge_id=${id}`)),
      0,
    );
    await tunnel.socket.close(1000, "done");
  }, { maxConnections: 1, connectTimeoutMs: 300 });
});
