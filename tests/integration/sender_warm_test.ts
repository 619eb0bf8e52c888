/**
 * Warm legs and early data against relay-server and the real listener: the first tunnel is cold,
 * later ones take warm legs; the pool refills after a listener restart, a relay recycle and at
 * the recycle age; early data is byte-exact and dropped on a refusal. Pool state is awaited
 * through its metrics hooks (PoolRecorder) and log lines, never with sleeps (one test idles on
 * purpose: the idle time is its scenario, not a wait for something to happen).
 */
import assert from "node:assert/strict";
import { delay } from "../../lib/async.ts";
import { type ListenerOptions, runListener } from "../../lib/listener/service.ts";
import { getLogger } from "../../lib/observe/log.ts";
import { ClientInput } from "../../lib/sender/early_data.ts";
import { runSocks5Proxy } from "../../lib/sender/socks5_proxy.ts";
import { EnvelopeRejected } from "../../lib/sender/open_tunnel.ts";
import { TunnelSource, type TunnelSourceOptions } from "../../lib/sender/tunnel_source.ts";
import { dialWarmLeg, WarmDialError } from "../../lib/sender/warm_leg.ts";
import { parseAllowlist } from "../../lib/tunnel/allowlist.ts";
import { pattern, sha256 } from "../helpers/bytes.ts";
import { fakeWarmListener, type FakeWarmListenerOptions } from "../helpers/fake_warm_listener.ts";
import { captureLogs } from "../helpers/logs.ts";
import { PoolRecorder } from "../helpers/pool_recorder.ts";
import {
  readAll,
  roundTrip,
  sendAndReadAll,
  socks5Connect,
  startCanary,
  tcpPair,
  writeAll,
} from "../helpers/servers.ts";
import {
  echo,
  type LocalRelay,
  type LocalService,
  startLocalRelay,
  startPortForward,
  startService,
  startTarget,
} from "../helpers/tunnel_stack.ts";

const FAST_BACKOFF = { backoffBaseMs: 50, backoffMaxMs: 200 };

interface RunningListener {
  /** Resolves once the control channel has come up `n` times in all. */
  up(n: number): Promise<void>;
  stop(): Promise<void>;
}

/** The real listener on `local`, restartable, reconnecting fast after a relay recycle. */
async function listenOn(
  local: LocalRelay,
  extra: Partial<ListenerOptions> = {},
): Promise<RunningListener> {
  const ac = new AbortController();
  let ups = 0;
  const waiters = new Set<() => void>();
  const running = runListener({
    endpoint: local.endpoint,
    entity: local.relay.entity,
    tokens: local.relay.tokens,
    allowlist: null,
    signal: ac.signal,
    logger: getLogger({ side: "listener" }),
    handler: { pingIntervalMs: 0 },
    controlChannel: { reconnectBaseMs: 20 },
    onConnectedChange: (isUp) => {
      if (!isUp) return;
      ups++;
      for (const w of [...waiters]) w();
    },
    ...extra,
  });
  const up = (n: number) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (ups < n) return;
        waiters.delete(check);
        resolve();
      };
      waiters.add(check);
      check();
    });
  await up(1);
  return {
    up,
    stop: () => {
      ac.abort(new DOMException("shutdown requested", "AbortError"));
      return running;
    },
  };
}

/** A target that answers the sha256 of everything it got, once the client's write side ends. */
async function hashReply(conn: Deno.TcpConn): Promise<void> {
  const got = await readAll(conn);
  await writeAll(conn, new TextEncoder().encode(sha256(got)));
  await conn.closeWrite();
}

/** Sends `data` through `fwd` at once (early data when the leg grants it); the target's digest. */
async function upload(fwd: LocalService, data: Uint8Array): Promise<string> {
  const client = await fwd.connect();
  try {
    return new TextDecoder().decode(await sendAndReadAll(client, data));
  } finally {
    client.close();
  }
}

async function echoClient(fwd: LocalService, text: string): Promise<void> {
  const client = await fwd.connect();
  try {
    await roundTrip(client, text);
  } finally {
    client.close();
  }
}

interface Stoppable {
  stop(): Promise<unknown>;
}

interface Rig<L, F> {
  local: LocalRelay;
  /** The one the rig stops at the end: a test may put a restarted listener here. */
  listener: L;
  pool: PoolRecorder;
  fwd: F;
}

/**
 * A local relay, a listener on it (`listen`) and a sender (`forward`) with a PoolRecorder, for
 * `body`; then the sender, the listener and the relay are stopped, in that order.
 */
async function withForward<L extends Stoppable, F extends Stoppable>(
  listen: (local: LocalRelay) => Promise<L>,
  forward: (local: LocalRelay, pool: PoolRecorder) => Promise<F>,
  body: (rig: Rig<L, F>) => Promise<void>,
): Promise<void> {
  const local = await startLocalRelay();
  let listener: L | undefined;
  let fwd: F | undefined;
  try {
    listener = await listen(local);
    const pool = new PoolRecorder();
    fwd = await forward(local, pool);
    const rig = { local, listener, pool, fwd };
    try {
      await body(rig);
    } finally {
      listener = rig.listener;
    }
  } finally {
    await fwd?.stop();
    await listener?.stop();
    await local.server.close();
  }
}

/** port-forward to `target` with `pool`, recorded. */
function forwardTarget(target: string, pool: TunnelSourceOptions["pool"]) {
  return (local: LocalRelay, poolMetrics: PoolRecorder) =>
    startPortForward(local.relay, target, { pool, poolMetrics });
}

Deno.test("warm: first tunnel cold, the next on a warm leg with early data, 1 MiB byte-exact", async () => {
  await using logs = await captureLogs();
  await using target = startTarget(hashReply);
  await withForward(listenOn, forwardTarget(target.addr, { min: 2, max: 4 }), async (rig) => {
    const { pool, fwd } = rig;
    const first = enc("cold");
    assert.equal(await upload(fwd, first), sha256(first));
    assert.deepEqual([pool.misses, pool.hits], [1, 0], "the first client is always cold");
    await pool.until((r) => r.ready >= 2, "2 ready legs");

    const data = pattern(1 << 20, 7);
    assert.equal(await upload(fwd, data), sha256(data));
    assert.equal(pool.hits, 1);
    assert.ok(pool.earlyBytes > 0, "client bytes went out before the answer");
    assert.ok(pool.earlyBytes <= 64 * 1024, `${pool.earlyBytes} early bytes, bounded`);
    assert.match(logs.lines.join(""), /msg="warm leg used".* early_data=true/);
    // The hand-out started a replacement.
    await pool.until((r) => r.ready >= 2, "refilled after the hand-out");
    assert.equal(logs.count(/level=WARN .*side=sender/), 0, logs.lines.join(""));
  });
});

Deno.test("warm: a warm dial refused at the listener's --max-warm-legs is not retried", async () => {
  await using _logs = await captureLogs();
  const ac = new AbortController();
  /** One warm leg dialled and held; the dial options for the next. */
  const holdOne = async (local: LocalRelay) => {
    // A retry would wait 5 s first (the relay dial's back-off), then retry the 503 for 30 s.
    const dialOpts = {
      relay: { ...local.relay, retryBaseMs: 5_000 },
      offered: ["half-close", "warm", "early-data"],
      signal: ac.signal,
      logger: getLogger({ side: "sender" }),
    };
    const held = await dialWarmLeg(dialOpts);
    return { dialOpts, stop: () => held.close(1000, "done") };
  };
  await withForward((local) => listenOn(local, { maxWarmLegs: 1 }), holdOne, async (rig) => {
    const started = performance.now();
    await assert.rejects(dialWarmLeg(rig.fwd.dialOpts), (err: unknown) => {
      assert.ok(err instanceof WarmDialError, String(err));
      assert.match(err.message, /503/);
      return true;
    });
    const took = performance.now() - started;
    assert.ok(took < 2_500, `refused after ${took.toFixed(0)} ms: one attempt, no retry`);
  });
});

Deno.test("warm: a burst beyond the pool rides warm dials, never cold; the legs left over are pooled", async () => {
  await using logs = await captureLogs();
  const listen = fakeOn({ hello: true, features: ["warm"], envelopeDeadlineMs: 20_000 });
  await withForward(listen, forwardTo(1, 8), async ({ listener: fake, pool, fwd }) => {
    await echoClient(fwd, "cold");
    await pool.until((r) => r.ready === 2, "2 ready legs");
    await Promise.all(Array.from({ length: 6 }, (_, i) => echoClient(fwd, `burst ${i}`)));
    assert.ok(
      pool.misses >= 3,
      `the burst found the pool short: ${JSON.stringify(pool.snapshot())}`,
    );
    const cold = fake.legs.filter((l) => l.envelope && !l.warm);
    assert.equal(cold.length, 1, "only the first client dialled cold");
    assert.equal(pool.muxStreams, 0, "a listener that grants no mux gets no shared leg");
    assert.equal(fake.legs.filter((l) => l.envelope && l.warm).length, 6);
    // The burst raised the target to the cap: legs nobody waited for went to the pool.
    await pool.until((r) => r.ready === 8, "8 ready legs");
    assert.equal(logs.count(/level=WARN .*side=sender/), 0, logs.lines.join(""));
  });
});

Deno.test("warm: the pool refills after a listener restart and serves from it", async () => {
  await using _logs = await captureLogs();
  await using target = startTarget(echo);
  const sizes = { min: 2, max: 4, timings: FAST_BACKOFF };
  await withForward(listenOn, forwardTarget(target.addr, sizes), async (rig) => {
    const { local, pool, fwd } = rig;
    await echoClient(fwd, "before");
    await pool.until((r) => r.ready >= 2, "warm before the restart");
    await rig.listener.stop();
    // The listener closed its held legs (1001): they left the pool.
    await pool.until((r) => r.ready === 0, "held legs gone with the listener");
    rig.listener = await listenOn(local);
    await pool.until((r) => r.ready >= 2, "warm again after the restart");
    const hits = pool.hits;
    await echoClient(fwd, "after");
    assert.equal(pool.hits, hits + 1, "served from a refilled leg");
  });
});

Deno.test("warm: after relay-server recycleListeners() the pool still serves and refills", async () => {
  await using _logs = await captureLogs();
  await using target = startTarget(echo);
  const sizes = { min: 2, max: 2, timings: FAST_BACKOFF };
  await withForward(listenOn, forwardTarget(target.addr, sizes), async (rig) => {
    const { local, listener, pool, fwd } = rig;
    await echoClient(fwd, "before");
    await pool.until((r) => r.ready >= 2, "warm before the recycle");
    assert.equal(local.server.recycleListeners(), 1);
    await listener.up(2);
    // More clients than legs held before the recycle: the later ones need legs dialled since.
    for (let i = 0; i < 4; i++) await echoClient(fwd, `after ${i}`);
    await pool.until((r) => r.ready >= 2, "refilled after the recycle");
    assert.ok(pool.hits >= 3, JSON.stringify(pool.snapshot()));
  });
});

Deno.test("warm: unused legs are recycled at their age and replaced", async () => {
  await using logs = await captureLogs();
  await using target = startTarget(echo);
  const sizes = { min: 2, max: 2, timings: { recycleAgeMs: 300 } };
  await withForward(listenOn, forwardTarget(target.addr, sizes), async ({ pool, fwd }) => {
    await echoClient(fwd, "cold");
    await logs.waitFor(/msg="warm leg recycled" side=sender/, 20_000, 2);
    // Two first legs, then at least two replacements.
    await logs.waitFor(/msg="warm leg ready" side=sender/, 20_000, 4);
    await pool.until((r) => r.ready >= 1, "a replacement ready");
    const hits = pool.hits;
    await echoClient(fwd, "warm");
    assert.equal(pool.hits, hits + 1);
    assert.equal(logs.count(/level=WARN .*side=sender/), 0, logs.lines.join(""));
  });
});

Deno.test("warm: early data to a refused target: client closed, the canary gets nothing", async () => {
  await using logs = await captureLogs();
  await using allowed = startTarget(echo);
  await using canary = startCanary();
  const listen = (local: LocalRelay) =>
    listenOn(local, { allowlist: parseAllowlist([allowed.addr]) });
  const sourceOn = (local: LocalRelay, pool: PoolRecorder) => {
    const source = new TunnelSource({
      relay: local.relay,
      logger: getLogger({ side: "sender" }),
      pool: { min: 1, max: 2 },
      metrics: pool,
    });
    return Promise.resolve({ source, stop: () => source.close() });
  };
  await withForward(listen, sourceOn, async ({ pool, fwd: { source } }) => {
    const [client, server] = await tcpPair();
    try {
      const cold = await source.open(allowed.addr);
      await cold.socket.close(1000, "done");
      await pool.until((r) => r.ready >= 1, "a warm leg");

      await writeAll(client, enc("secret early bytes"));
      const input = new ClientInput(server);
      const refused = await source.open(canary.addr, { earlyData: input })
        .then(() => null, (err) => err);
      assert.ok(refused instanceof EnvelopeRejected, String(refused));
      assert.equal(refused.code, "not_allowed");
      assert.match(logs.lines.join(""), /msg="warm leg used".* early_data=true/);
      server.close();
      assert.equal((await readAll(client)).length, 0, "the client got nothing but its close");
      assert.equal(canary.accepts, 0);
      assert.equal(pool.earlyBytes, 0, "nothing counted as delivered");
    } finally {
      client.close();
    }
  });
});

function enc(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

Deno.test("warm: socks5-proxy uses warm legs but waits for the answer (no early data)", async () => {
  await using logs = await captureLogs();
  await using target = startTarget(echo);
  const socks5 = (local: LocalRelay, pool: PoolRecorder) =>
    startService(runSocks5Proxy, {
      relay: local.relay,
      pool: { min: 1, max: 2 },
      poolMetrics: pool,
    });
  await withForward(listenOn, socks5, async ({ pool, fwd: proxy }) => {
    for (const text of ["cold", "warm"]) {
      const { reply, conn } = await socks5Connect(proxy.port, "127.0.0.1", target.port);
      assert.equal(reply, 0);
      await roundTrip(conn!, text);
      conn!.close();
      if (text === "cold") await pool.until((r) => r.ready >= 1, "a warm leg");
    }
    assert.deepEqual([pool.misses, pool.hits, pool.earlyBytes], [1, 1, 0]);
    assert.match(logs.lines.join(""), /msg="warm leg used".* early_data=false/);
  });
});

// ---- fake listeners (tests/helpers/fake_warm_listener.ts): Go-like (no hello) and Deno-like ----

/** The fake listener on the rig's relay. */
function fakeOn(opts: FakeWarmListenerOptions) {
  return (local: LocalRelay) => fakeWarmListener(local, opts);
}

/** port-forward for the fakes: v1 tunnels end at the client's EOF (no linger). */
function forwardTo(min: number, max: number) {
  return (local: LocalRelay, pool: PoolRecorder) =>
    startPortForward(local.relay, "10.0.0.5:22", {
      pool: { min, max, timings: { helloTimeoutMs: 200, ...FAST_BACKOFF } },
      poolMetrics: pool,
      halfCloseLingerMs: 0,
    });
}

Deno.test("warm: a Go-like listener: nothing warmed or pooled, every client served, also after idling", async () => {
  await using logs = await captureLogs();
  const listen = fakeOn({ hello: false, features: [], envelopeDeadlineMs: 2000 });
  await withForward(listen, forwardTo(2, 4), async ({ listener: go, pool, fwd }) => {
    for (let i = 0; i < 3; i++) await echoClient(fwd, `client ${i}`);
    // Idle past the listener's envelope deadline (Go: 30 s, here 2 s): the time is the scenario,
    // a leg held through it would be dropped by Go and fail its client.
    await delay(2_500);
    await echoClient(fwd, "after the idle");
    assert.equal(pool.maxReady, 0);
    assert.equal(pool.misses, 4);
    assert.ok(go.legs.every((l) => !l.warm), "no leg was marked warm");
    assert.equal(logs.count(/level=WARN .*side=sender/), 0, logs.lines.join(""));
  });
});

Deno.test("warm: a listener that grants warm but never says hello: legs closed unused, clients served", async () => {
  await using logs = await captureLogs();
  // Its envelope deadline is far longer than the sender's hello wait, as Go's 30 s is to 5 s.
  const listen = fakeOn({ hello: false, features: ["warm"], envelopeDeadlineMs: 10_000 });
  await withForward(listen, forwardTo(2, 4), async ({ listener: silent, pool, fwd }) => {
    await echoClient(fwd, "cold");
    await logs.waitFor(/msg="warm legs backing off" side=sender/);
    // Warming is tried again after the back-off: still nothing pooled, and clients still served.
    await logs.waitFor(/msg="warm legs backing off" side=sender/, 20_000, 2);
    for (let i = 0; i < 2; i++) await echoClient(fwd, `client ${i}`);
    await silent.until(
      (legs) => legs.filter((l) => l.warm && l.unused).length >= 3,
      "three warm legs given up",
    );
    const warm = silent.legs.filter((l) => l.warm && l.unused);
    assert.ok(warm.every((l) => l.unused?.by === "sender" && l.unused.code === 1000));
    assert.ok(silent.legs.filter((l) => l.warm).every((l) => !l.envelope), "no client on them");
    assert.equal(pool.maxReady, 0);
    assert.equal(pool.hits, 0);
    assert.equal(logs.count(/level=WARN .*side=sender/), 0, logs.lines.join(""));
  });
});

Deno.test("warm: a leg that dies idle is replaced; one dead when used is retried, not failed", async () => {
  await using logs = await captureLogs();
  const listen = fakeOn({
    hello: true,
    features: ["warm"],
    envelopeDeadlineMs: 20_000,
    cutAtEnvelope: 1,
  });
  await withForward(listen, forwardTo(2, 2), async ({ listener: fake, pool, fwd }) => {
    await echoClient(fwd, "cold");
    await pool.until((r) => r.ready === 2, "2 ready legs");
    // An idle leg dies: the pool notices and dials a replacement.
    await fake.legs.find((l) => l.warm)!.ws.close(1001, "gone");
    await logs.waitFor(/msg="warm leg died" side=sender.* reason=died/);
    await fake.until((legs) => legs.filter((l) => l.warm).length >= 3, "a replacement dialled");
    await pool.until((r) => r.ready === 2, "2 ready legs again");
    // The next warm envelope is dropped unanswered: the client is retried on another leg.
    await echoClient(fwd, "retried");
    // One tunnel, one hit: the dead leg's replacement is part of the same open (counted once).
    assert.equal(pool.hits, 1, "one hit for the retried tunnel");
    assert.equal(pool.misses, 1, "only the first client was cold");
    assert.equal(logs.count(/level=WARN .*side=sender/), 0, logs.lines.join(""));
  });
});

Deno.test("warm: --pool-max 0 is today's behaviour: no warm leg, today's envelope", async () => {
  await using _logs = await captureLogs();
  const listen = fakeOn({
    hello: true,
    features: ["half-close", "warm", "early-data"],
    envelopeDeadlineMs: 2000,
  });
  const noPool = forwardTarget("10.0.0.5:22", { min: 2, max: 0 });
  await withForward(listen, noPool, async ({ listener: fake, pool, fwd }) => {
    const client = await fwd.connect();
    await writeAll(client, enc("x"));
    await client.closeWrite();
    await readAll(client);
    client.close();
    assert.equal(fake.legs.length, 1);
    assert.equal(fake.legs[0].warm, false);
    const env = fake.legs[0].envelope!;
    assert.deepEqual(Object.keys(env), ["version", "target", "metadata", "bridge_id"]);
    assert.deepEqual(env.metadata, { "x-aztunnel-features": "half-close" });
    assert.deepEqual(pool.snapshot(), { ready: 0, maxReady: 0, hits: 0, misses: 0, earlyBytes: 0 });
  });
});
