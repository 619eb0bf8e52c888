import assert from "node:assert/strict";
import { getLogger } from "../../lib/observe/log.ts";
import { type LegEnd, WarmLeg } from "../../lib/sender/warm_leg.ts";
import { fakeSocketPair } from "../helpers/fake_socket.ts";

const HELLO = { listener_id: "L", features: ["half-close", "warm", "early-data"] };
const SLOW = { pingIntervalMs: 60_000, pingTimeoutMs: 1_000, recycleAgeMs: 60_000 };

function leg(offered = ["half-close", "warm", "early-data"]) {
  const [ours, theirs] = fakeSocketPair();
  const l = new WarmLeg("LEG", ours, HELLO, offered, getLogger(), 12);
  const ended = Promise.withResolvers<LegEnd>();
  return { l, ours, theirs, ended };
}

Deno.test("warm leg: features are the offer intersected with the hello; early data from both", async () => {
  const a = leg();
  assert.deepEqual(a.l.features, ["half-close", "warm", "early-data"]);
  assert.ok(a.l.earlyData);
  const b = leg(["half-close", "warm"]);
  assert.ok(!b.l.earlyData, "not offered: no early data");
  for (const x of [a, b]) x.ours.closeNow();
  await Promise.all([a.ours.closed, b.ours.closed]);
});

Deno.test("warm leg: a peer close while idle ends it once as died; take() then refuses", async () => {
  const { l, ours, theirs, ended } = leg();
  l.idle(SLOW, ended.resolve);
  await theirs.close(1001, "gone");
  assert.equal(await ended.promise, "died");
  assert.equal(l.take(), false);
  await ours.closed;
});

Deno.test("warm leg: taken, it is no longer watched; its reply is the envelope's answer", async () => {
  const { l, ours, theirs } = leg();
  let ends = 0;
  l.idle(SLOW, () => ends++);
  assert.equal(l.take(), true);
  assert.equal(l.take(), false, "handed out once");
  await theirs.send('{"version":1,"ok":true}');
  const msg = await l.reply;
  assert.equal(msg?.type === "text" && msg.data, '{"version":1,"ok":true}');
  ours.closeNow();
  await ours.closed;
  assert.equal(ends, 0);
});

Deno.test("warm leg: recycled at its age with Close 1000 recycle", async () => {
  const { l, theirs, ended } = leg();
  l.idle({ ...SLOW, recycleAgeMs: 10 }, ended.resolve);
  assert.equal(await ended.promise, "recycle");
  assert.equal(await theirs.receive(), null);
  assert.deepEqual(theirs.closeInfo, { code: 1000, reason: "recycle" });
  await theirs.close();
  await l.socket.closed;
});

Deno.test("warm leg: pinged while idle; a failed ping ends it", async () => {
  const { l, ours, ended } = leg();
  const pinged = Promise.withResolvers<void>();
  const ping = ours.ping.bind(ours);
  let calls = 0;
  ours.ping = (ms: number) => {
    calls++;
    if (calls === 1) {
      pinged.resolve();
      return ping(ms);
    }
    return Promise.reject(new Error("no pong"));
  };
  l.idle({ ...SLOW, pingIntervalMs: 5 }, ended.resolve);
  await pinged.promise;
  assert.equal(await ended.promise, "ping_failed");
  await ours.closed;
});
