/**
 * A warm leg lost after early bytes were handed to it is not retried (the listener may already
 * have delivered them: a retry would deliver them twice); one lost before any early byte was
 * attempted is. Against relay-server with a scriptable fake listener that, like a real one,
 * dials the envelope's target and writes the early data there before answering.
 */
import assert from "node:assert/strict";
import { deadline } from "../../lib/async.ts";
import { fakeWarmListener, type FakeWarmListenerOptions } from "../helpers/fake_warm_listener.ts";
import { captureLogs } from "../helpers/logs.ts";
import { PoolRecorder } from "../helpers/pool_recorder.ts";
import { readAll, roundTrip, writeAll } from "../helpers/servers.ts";
import {
  type LocalRelay,
  type LocalService,
  startLocalRelay,
  startPortForward,
  startTarget,
} from "../helpers/tunnel_stack.ts";

const FEATURES = ["warm", "early-data"];
const WAIT_MS = 20_000;

/** A Deno-like listener (hello, early data) that cuts warm legs as `cuts` says; v1 echo. */
function fakeListener(
  local: LocalRelay,
  cuts: Pick<FakeWarmListenerOptions, "cutAfterEarly" | "cutAtEnvelope">,
) {
  return fakeWarmListener(local, { features: FEATURES, envelopeDeadlineMs: WAIT_MS, ...cuts });
}
/** port-forward to `target` with a pool of 2 ready legs; v1 tunnels end at the client's EOF. */
function forwardTo(local: LocalRelay, target: string, pool: PoolRecorder): Promise<LocalService> {
  return startPortForward(local.relay, target, {
    pool: { min: 2, max: 2, timings: { backoffBaseMs: 50, backoffMaxMs: 200 } },
    poolMetrics: pool,
    halfCloseLingerMs: 0,
  });
}

async function echoClient(fwd: LocalService, text: string): Promise<void> {
  const client = await fwd.connect();
  try {
    await roundTrip(client, text);
  } finally {
    client.close();
  }
}

/** Everything the client reads until its end (a reset counts as an end). */
async function readToEnd(conn: Deno.TcpConn): Promise<Uint8Array> {
  return await deadline(
    readAll(conn).catch((err) => {
      if (err instanceof Deno.errors.ConnectionReset) return new Uint8Array();
      throw err;
    }),
    WAIT_MS,
  );
}

Deno.test("no resend: a warm leg lost after its early bytes: client closed, bytes delivered once", async () => {
  await using _logs = await captureLogs();
  const deliveries: Uint8Array[] = [];
  const delivered = Promise.withResolvers<void>();
  await using target = startTarget(async (conn) => {
    deliveries.push(await readAll(conn));
    delivered.resolve();
  });
  const local = await startLocalRelay();
  const fake = await fakeListener(local, { cutAfterEarly: 1 });
  const pool = new PoolRecorder();
  const fwd = await forwardTo(local, target.addr, pool);
  try {
    await echoClient(fwd, "cold"); // the cold answer grants warm: the pool fills
    await pool.until((r) => r.ready === 2, "2 ready legs");
    const secret = new TextEncoder().encode("pay once, exactly once");
    const client = await fwd.connect();
    try {
      await writeAll(client, secret);
      assert.equal((await readToEnd(client)).length, 0, "the client got nothing but its end");
    } finally {
      client.close();
    }
    await deadline(delivered.promise, WAIT_MS);
    assert.equal(pool.earlyBytes, 0, "nothing counted as delivered early");
    const used = fake.used();
    assert.equal(used.length, 2, `envelopes: the cold one and one warm, no retry (${used.length})`);
    assert.deepEqual(used.map((l) => [l.warm, !!l.cut]), [[false, false], [true, true]]);
    assert.deepEqual(used[1].early, secret);
    // The pool still serves (the cut is spent): and no stray retry reached the target meanwhile.
    await echoClient(fwd, "after");
    assert.equal(fake.used().length, 3);
    assert.equal(deliveries.length, 1, "the target saw the bytes once");
    assert.deepEqual(deliveries[0], secret);
  } finally {
    await fwd.stop();
    await fake.stop();
    await local.server.close();
  }
});

Deno.test("no resend: a warm leg lost before any early byte was attempted is retried", async () => {
  await using logs = await captureLogs();
  await using target = startTarget(async (conn) => void await readAll(conn));
  const local = await startLocalRelay();
  const fake = await fakeListener(local, { cutAtEnvelope: 1 });
  const pool = new PoolRecorder();
  const fwd = await forwardTo(local, target.addr, pool);
  try {
    await echoClient(fwd, "cold");
    await pool.until((r) => r.ready === 2, "2 ready legs");
    // The client says nothing until its tunnel is answered: the early pump attempts no byte.
    const client = await fwd.connect();
    try {
      await fake.until(
        (legs) => legs.filter((l) => l.warm && l.envelope && !l.cut).length === 1,
        "a retry on a second warm leg",
      );
      await roundTrip(client, "retried, once");
    } finally {
      client.close();
    }
    const warm = fake.used().filter((l) => l.warm);
    assert.deepEqual(warm.map((l) => !!l.cut), [true, false]);
    assert.equal(pool.hits, 1, "one hit for the retried tunnel");
    assert.match(logs.lines.join(""), /msg="warm leg used".* early_data=true/);
    assert.equal(logs.count(/level=WARN .*side=sender/), 0, logs.lines.join(""));
  } finally {
    await fwd.stop();
    await fake.stop();
    await local.server.close();
  }
});
