import assert from "node:assert/strict";
import { holdWarmLeg } from "../../lib/listener/warm_hold.ts";
import { getLogger } from "../../lib/observe/log.ts";
import { fakeSocketPair } from "../helpers/fake_socket.ts";
import { withLogs } from "../helpers/logs.ts";

const FEATURES = ["half-close", "warm", "early-data"];
const HELLO = '{"version":1,"hello":"warm","listener_id":"L1","features":' +
  '["half-close","warm","early-data"]}';

function hold(opts: { idleMs?: number; signal?: AbortSignal } = {}) {
  const [ws, sender] = fakeSocketPair();
  const first = holdWarmLeg(ws, {
    listenerId: "L1",
    features: FEATURES,
    logger: getLogger({ accept_id: "ACCEPT" }),
    ...opts,
  });
  return { ws, sender, first };
}

Deno.test("warm hold: hello first, then the first message is handed on unread", async () => {
  await withLogs(async (lines) => {
    const { sender, first } = hold();
    assert.deepEqual(await sender.receive(), { type: "text", data: HELLO });
    await sender.send('{"version":1,"target":"h:22"}');
    await sender.send(new Uint8Array([1, 2, 3]));
    assert.deepEqual(await first, { type: "text", data: '{"version":1,"target":"h:22"}' });
    assert.ok(lines.some((l) => /level=DEBUG msg="warm leg held" accept_id=ACCEPT/.test(l)));
    assert.ok(lines.some((l) => /level=DEBUG msg="warm leg used" accept_id=ACCEPT/.test(l)));
  });
});

Deno.test("warm hold: a binary first message is handed on as it is", async () => {
  const { sender, first } = hold();
  await sender.receive();
  await sender.send(new Uint8Array([123, 125]));
  assert.deepEqual(await first, { type: "binary", data: new Uint8Array([123, 125]) });
});

Deno.test("warm hold: the idle limit closes 1000 idle", async () => {
  await withLogs(async (lines) => {
    const { sender, first } = hold({ idleMs: 20 });
    await sender.receive();
    assert.equal(await sender.receive(), null);
    assert.deepEqual(sender.closeInfo, { code: 1000, reason: "idle" });
    await sender.close();
    assert.equal(await first, null);
    assert.ok(lines.some((l) => l.includes('msg="warm leg idle-closed"')));
  });
});

Deno.test("warm hold: a stop closes 1001 at once", async () => {
  const ac = new AbortController();
  const { sender, first } = hold({ signal: ac.signal });
  await sender.receive();
  ac.abort();
  assert.equal(await sender.receive(), null);
  assert.equal(sender.closeInfo?.code, 1001);
  await sender.close();
  assert.equal(await first, null);
});

Deno.test("warm hold: the sender's Close (a recycle) ends the hold with no envelope", async () => {
  await withLogs(async (lines) => {
    const { ws, sender, first } = hold();
    await sender.receive();
    const closing = sender.close(1000, "recycle");
    assert.equal(await first, null);
    await closing;
    assert.equal(ws.closeSent, true);
    assert.ok(lines.some((l) => /msg="warm leg closed by sender" .*close="1000: recycle"/.test(l)));
  });
});

Deno.test("warm hold: a dropped socket ends the hold", async () => {
  const { sender, first } = hold();
  await sender.receive();
  sender.closeNow();
  assert.equal(await first, null);
});
