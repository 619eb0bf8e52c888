/**
 * Warm legs and early data against relay-server and the real listener: the first tunnel is cold,
 * later ones take warm legs; the pool refills after a listener restart, a relay recycle and at
 * the recycle age; early data is byte-exact and dropped on a refusal. Pool state is awaited
 * through its metrics hooks (PoolRecorder) and log lines, never with sleeps.
 */
import assert from "node:assert/strict";
import { deadline } from "../../lib/async.ts";
import { type ListenerOptions, runListener } from "../../lib/listener/service.ts";
import { runControlChannel } from "../../lib/relay/control_channel.ts";
import { getLogger } from "../../lib/observe/log.ts";
import { ClientInput } from "../../lib/sender/early_data.ts";
import { runSocks5Proxy } from "../../lib/sender/socks5_proxy.ts";
import { EnvelopeRejected } from "../../lib/sender/open_tunnel.ts";
import { TunnelSource } from "../../lib/sender/tunnel_source.ts";
import { dialWarmLeg, WarmDialError } from "../../lib/sender/warm_leg.ts";
import { parseAllowlist } from "../../lib/tunnel/allowlist.ts";
import { encodeHello, isWarmLeg } from "../../lib/tunnel/warm.ts";
import { connectWebSocket } from "../../lib/ws/client.ts";
import type { WebSocketConn } from "../../lib/ws/conn.ts";
import { pattern, sha256 } from "../helpers/bytes.ts";
import { captureLogs } from "../helpers/logs.ts";
import { PoolRecorder } from "../helpers/pool_recorder.ts";
import { readAll, roundTrip, socks5Connect, tcpPair, writeAll } from "../helpers/servers.ts";
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
    const [, back] = await Promise.all([
      writeAll(client, data).then(() => client.closeWrite()),
      readAll(client),
    ]);
    return new TextDecoder().decode(back);
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

Deno.test("warm: first tunnel cold, the next on a warm leg with early data, 1 MiB byte-exact", async () => {
  await using logs = await captureLogs();
  await using target = startTarget(hashReply);
  const local = await startLocalRelay();
  const listener = await listenOn(local);
  const pool = new PoolRecorder();
  const fwd = await startPortForward(local.relay, target.addr, {
    pool: { min: 2, max: 4 },
    poolMetrics: pool,
  });
  try {
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
  } finally {
    await fwd.stop();
    await listener.stop();
    await local.server.close();
  }
});

Deno.test("warm: a warm dial refused at the listener's --max-warm-legs is not retried", async () => {
  await using _logs = await captureLogs();
  const local = await startLocalRelay();
  const listener = await listenOn(local, { maxWarmLegs: 1 });
  const ac = new AbortController();
  // A retry would wait 5 s first (the relay dial's back-off), then retry the 503 for 30 s.
  const dialOpts = {
    relay: { ...local.relay, retryBaseMs: 5_000 },
    offered: ["half-close", "warm", "early-data"],
    signal: ac.signal,
    logger: getLogger({ side: "sender" }),
  };
  const held = await dialWarmLeg(dialOpts);
  try {
    const started = performance.now();
    await assert.rejects(dialWarmLeg(dialOpts), (err: unknown) => {
      assert.ok(err instanceof WarmDialError, String(err));
      assert.match(err.message, /503/);
      return true;
    });
    const took = performance.now() - started;
    assert.ok(took < 2_500, `refused after ${took.toFixed(0)} ms: one attempt, no retry`);
  } finally {
    await held.close(1000, "done");
    await listener.stop();
    await local.server.close();
  }
});

Deno.test("warm: a burst beyond the pool rides warm dials, never cold; the legs left over are pooled", async () => {
  await using logs = await captureLogs();
  const local = await startLocalRelay();
  const fake = await fakeListener(local, {
    hello: true,
    features: ["warm"],
    envelopeDeadlineMs: 20_000,
  });
  const pool = new PoolRecorder();
  const fwd = await forwardTo(local, pool, 1, 8);
  try {
    await echoClient(fwd, "cold");
    await pool.until((r) => r.ready === 2, "2 ready legs");
    await Promise.all(Array.from({ length: 6 }, (_, i) => echoClient(fwd, `burst ${i}`)));
    assert.ok(
      pool.misses >= 3,
      `the burst found the pool short: ${JSON.stringify(pool.snapshot())}`,
    );
    const cold = fake.legs.filter((l) => l.envelope && !l.warm);
    assert.equal(cold.length, 1, "only the first client dialled cold");
    assert.equal(fake.legs.filter((l) => l.envelope && l.warm).length, 6);
    // The burst raised the target to the cap: legs nobody waited for went to the pool.
    await pool.until((r) => r.ready === 8, "8 ready legs");
    assert.equal(logs.count(/level=WARN .*side=sender/), 0, logs.lines.join(""));
  } finally {
    await fwd.stop();
    await fake.stop();
    await local.server.close();
  }
});

Deno.test("warm: the pool refills after a listener restart and serves from it", async () => {
  await using _logs = await captureLogs();
  await using target = startTarget(echo);
  const local = await startLocalRelay();
  let listener = await listenOn(local);
  const pool = new PoolRecorder();
  const fwd = await startPortForward(local.relay, target.addr, {
    pool: { min: 2, max: 4, timings: FAST_BACKOFF },
    poolMetrics: pool,
  });
  try {
    await echoClient(fwd, "before");
    await pool.until((r) => r.ready >= 2, "warm before the restart");
    await listener.stop();
    // The listener closed its held legs (1001): they left the pool.
    await pool.until((r) => r.ready === 0, "held legs gone with the listener");
    listener = await listenOn(local);
    await pool.until((r) => r.ready >= 2, "warm again after the restart");
    const hits = pool.hits;
    await echoClient(fwd, "after");
    assert.equal(pool.hits, hits + 1, "served from a refilled leg");
  } finally {
    await fwd.stop();
    await listener.stop();
    await local.server.close();
  }
});

Deno.test("warm: after relay-server recycleListeners() the pool still serves and refills", async () => {
  await using _logs = await captureLogs();
  await using target = startTarget(echo);
  const local = await startLocalRelay();
  const listener = await listenOn(local);
  const pool = new PoolRecorder();
  const fwd = await startPortForward(local.relay, target.addr, {
    pool: { min: 2, max: 2, timings: FAST_BACKOFF },
    poolMetrics: pool,
  });
  try {
    await echoClient(fwd, "before");
    await pool.until((r) => r.ready >= 2, "warm before the recycle");
    assert.equal(local.server.recycleListeners(), 1);
    await listener.up(2);
    // More clients than legs held before the recycle: the later ones need legs dialled since.
    for (let i = 0; i < 4; i++) await echoClient(fwd, `after ${i}`);
    await pool.until((r) => r.ready >= 2, "refilled after the recycle");
    assert.ok(pool.hits >= 3, JSON.stringify(pool.snapshot()));
  } finally {
    await fwd.stop();
    await listener.stop();
    await local.server.close();
  }
});

Deno.test("warm: unused legs are recycled at their age and replaced", async () => {
  await using logs = await captureLogs();
  await using target = startTarget(echo);
  const local = await startLocalRelay();
  const listener = await listenOn(local);
  const pool = new PoolRecorder();
  const fwd = await startPortForward(local.relay, target.addr, {
    pool: { min: 2, max: 2, timings: { recycleAgeMs: 300 } },
    poolMetrics: pool,
  });
  try {
    await echoClient(fwd, "cold");
    await logs.waitFor(/msg="warm leg recycled" side=sender/, 20_000, 2);
    // Two first legs, then at least two replacements.
    await logs.waitFor(/msg="warm leg ready" side=sender/, 20_000, 4);
    await pool.until((r) => r.ready >= 1, "a replacement ready");
    const hits = pool.hits;
    await echoClient(fwd, "warm");
    assert.equal(pool.hits, hits + 1);
    assert.equal(logs.count(/level=WARN .*side=sender/), 0, logs.lines.join(""));
  } finally {
    await fwd.stop();
    await listener.stop();
    await local.server.close();
  }
});

Deno.test("warm: early data to a refused target: client closed, the canary gets nothing", async () => {
  await using logs = await captureLogs();
  await using allowed = startTarget(echo);
  const canary = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let canaryAccepts = 0;
  const watching = (async () => {
    for await (const c of canary) {
      canaryAccepts++;
      c.close();
    }
  })();
  const local = await startLocalRelay();
  const listener = await listenOn(local, { allowlist: parseAllowlist([allowed.addr]) });
  const pool = new PoolRecorder();
  const source = new TunnelSource({
    relay: local.relay,
    logger: getLogger({ side: "sender" }),
    pool: { min: 1, max: 2 },
    metrics: pool,
  });
  const [client, server] = await tcpPair();
  try {
    const cold = await source.open(allowed.addr);
    await cold.socket.close(1000, "done");
    await pool.until((r) => r.ready >= 1, "a warm leg");

    await writeAll(client, enc("secret early bytes"));
    const input = new ClientInput(server);
    const refused = await source.open(`127.0.0.1:${canary.addr.port}`, { earlyData: input })
      .then(() => null, (err) => err);
    assert.ok(refused instanceof EnvelopeRejected, String(refused));
    assert.equal(refused.code, "not_allowed");
    assert.match(logs.lines.join(""), /msg="warm leg used".* early_data=true/);
    server.close();
    assert.equal((await readAll(client)).length, 0, "the client got nothing but its close");
    assert.equal(canaryAccepts, 0);
    assert.equal(pool.earlyBytes, 0, "nothing counted as delivered");
  } finally {
    client.close();
    await source.close();
    await listener.stop();
    await local.server.close();
    canary.close();
    await watching;
  }
});

function enc(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

Deno.test("warm: socks5-proxy uses warm legs but waits for the answer (no early data)", async () => {
  await using logs = await captureLogs();
  await using target = startTarget(echo);
  const local = await startLocalRelay();
  const listener = await listenOn(local);
  const pool = new PoolRecorder();
  const proxy = await startService(runSocks5Proxy, {
    relay: local.relay,
    pool: { min: 1, max: 2 },
    poolMetrics: pool,
  });
  try {
    for (const text of ["cold", "warm"]) {
      const { reply, conn } = await socks5Connect(proxy.port, "127.0.0.1", target.port);
      assert.equal(reply, 0);
      await roundTrip(conn!, text);
      conn!.close();
      if (text === "cold") await pool.until((r) => r.ready >= 1, "a warm leg");
    }
    assert.deepEqual([pool.misses, pool.hits, pool.earlyBytes], [1, 1, 0]);
    assert.match(logs.lines.join(""), /msg="warm leg used".* early_data=false/);
  } finally {
    await proxy.stop();
    await listener.stop();
    await local.server.close();
  }
});

// ---- fake listeners: a Go-like one (no hello) and a scriptable Deno-like one ----

interface FakeListenerOptions {
  /** Say hello on warm legs (a Deno listener does; a Go one does not). */
  hello: boolean;
  /** The answer's `features` (Go: none). */
  features: string[];
  /** Go's --connect-timeout, shortened: a leg with no envelope by then is closed. */
  envelopeDeadlineMs: number;
  /** How many warm envelopes get no answer: the leg is dropped instead (a leg dead when used). */
  dropWarmEnvelopes?: number;
}

interface FakeLeg {
  warm: boolean;
  ws: WebSocketConn;
  /** What became of it before any envelope: "sender" (closed by the sender) or "deadline". */
  unused?: { by: "sender" | "deadline"; code?: number };
  envelope?: Record<string, unknown>;
}

/** A listener on `local` built from lib/relay's control channel and lib/ws; it echoes (v1). */
async function fakeListener(local: LocalRelay, opts: FakeListenerOptions) {
  const legs: FakeLeg[] = [];
  const sessions: Promise<void>[] = [];
  let drops = opts.dropWarmEnvelopes ?? 0;
  const changed = new Set<() => void>();
  const notify = () => {
    for (const w of [...changed]) w();
  };
  const serve = async (address: string, warm: boolean) => {
    const ws = await connectWebSocket(address);
    const leg: FakeLeg = { warm, ws };
    legs.push(leg);
    notify();
    if (warm && opts.hello) {
      await ws.send(encodeHello({ listener_id: "FAKE", features: opts.features }));
    }
    const first = await deadline(ws.receive(), opts.envelopeDeadlineMs)
      .catch(() => "deadline" as const);
    if (first === "deadline" || first === null || first.type !== "text") {
      leg.unused = first === "deadline"
        ? { by: "deadline" }
        : { by: "sender", code: ws.closeInfo?.code };
      await ws.close(1000, "no envelope").catch(() => {});
      notify();
      return;
    }
    leg.envelope = JSON.parse(first.data);
    notify();
    if (warm && drops > 0) {
      drops--;
      ws.closeNow();
      return;
    }
    const answer: Record<string, unknown> = { version: 1, ok: true, listener_id: "FAKE" };
    if (opts.features.length > 0) answer.features = opts.features;
    await ws.send(JSON.stringify(answer));
    for (let msg = await ws.receive(); msg; msg = await ws.receive()) await ws.send(msg.data);
    await ws.close(1000, "done").catch(() => {});
  };
  const stopControl = new AbortController();
  const up = Promise.withResolvers<void>();
  const control = runControlChannel({
    endpoint: local.endpoint,
    entity: local.relay.entity,
    tokens: local.relay.tokens,
    logger: getLogger({ side: "fake-listener" }),
    signal: stopControl.signal,
    onAccept: (accept) =>
      void sessions.push(serve(accept.address, isWarmLeg(accept.connectHeaders)).catch(() => {})),
    onConnectedChange: (isUp) => isUp && up.resolve(),
  });
  await up.promise;
  return {
    legs,
    /** Resolves once `pred(legs)` holds. */
    until: (pred: (l: FakeLeg[]) => boolean, what: string) =>
      deadline(
        new Promise<void>((resolve) => {
          const check = () => {
            if (!pred(legs)) return;
            changed.delete(check);
            resolve();
          };
          changed.add(check);
          check();
        }),
        20_000,
        { onTimeout: () => new Error(`fake listener: ${what} not reached`) },
      ),
    async stop() {
      stopControl.abort();
      await control;
      for (const l of legs) l.ws.closeNow();
      await Promise.all(sessions);
    },
  };
}

/** port-forward for the fakes: v1 tunnels end at the client's EOF (no linger). */
function forwardTo(local: LocalRelay, pool: PoolRecorder, min: number, max: number) {
  return startPortForward(local.relay, "10.0.0.5:22", {
    pool: { min, max, timings: { helloTimeoutMs: 200, ...FAST_BACKOFF } },
    poolMetrics: pool,
    halfCloseLingerMs: 0,
  });
}

Deno.test("warm: a Go-like listener: nothing warmed or pooled, every client served", async () => {
  await using logs = await captureLogs();
  const local = await startLocalRelay();
  const go = await fakeListener(local, { hello: false, features: [], envelopeDeadlineMs: 2000 });
  const pool = new PoolRecorder();
  const fwd = await forwardTo(local, pool, 2, 4);
  try {
    for (let i = 0; i < 3; i++) await echoClient(fwd, `client ${i}`);
    assert.equal(pool.maxReady, 0);
    assert.equal(pool.misses, 3);
    assert.ok(go.legs.every((l) => !l.warm), "no leg was marked warm");
    assert.equal(logs.count(/level=WARN .*side=sender/), 0, logs.lines.join(""));
  } finally {
    await fwd.stop();
    await go.stop();
    await local.server.close();
  }
});

Deno.test("warm: a listener that grants warm but never says hello: legs closed unused, clients served", async () => {
  await using logs = await captureLogs();
  const local = await startLocalRelay();
  // Its envelope deadline is far longer than the sender's hello wait, as Go's 30 s is to 5 s.
  const silent = await fakeListener(local, {
    hello: false,
    features: ["warm"],
    envelopeDeadlineMs: 10_000,
  });
  const pool = new PoolRecorder();
  const fwd = await forwardTo(local, pool, 2, 4);
  try {
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
  } finally {
    await fwd.stop();
    await silent.stop();
    await local.server.close();
  }
});

Deno.test("warm: a leg that dies idle is replaced; one dead when used is retried, not failed", async () => {
  await using logs = await captureLogs();
  const local = await startLocalRelay();
  const fake = await fakeListener(local, {
    hello: true,
    features: ["warm"],
    envelopeDeadlineMs: 20_000,
    dropWarmEnvelopes: 1,
  });
  const pool = new PoolRecorder();
  const fwd = await forwardTo(local, pool, 2, 2);
  try {
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
  } finally {
    await fwd.stop();
    await fake.stop();
    await local.server.close();
  }
});

Deno.test("warm: --pool-max 0 is today's behaviour: no warm leg, today's envelope", async () => {
  await using _logs = await captureLogs();
  const local = await startLocalRelay();
  const fake = await fakeListener(local, {
    hello: true,
    features: ["half-close", "warm", "early-data"],
    envelopeDeadlineMs: 2000,
  });
  const pool = new PoolRecorder();
  const fwd = await startPortForward(local.relay, "10.0.0.5:22", {
    pool: { min: 2, max: 0 },
    poolMetrics: pool,
  });
  try {
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
  } finally {
    await fwd.stop();
    await fake.stop();
    await local.server.close();
  }
});
