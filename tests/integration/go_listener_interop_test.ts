/**
 * Our sender against a listener that behaves exactly as the Go aztunnel's does on the wire
 * (aztunnel-reference.md §2): it reads messages with coder/websocket's 32768-byte limit (a bigger
 * one closes with 1009), answers the envelope with no `features`, echoes bytes, and ends the tunnel
 * with Close 1000 "done" after its target's EOF.
 */
import assert from "node:assert/strict";
import { getLogger } from "../../lib/observe/log.ts";
import { runControlChannel } from "../../lib/relay/control_channel.ts";
import { runPortForward } from "../../lib/sender/port_forward.ts";
import { connectWebSocket } from "../../lib/ws/client.ts";
import { readAll, writeAll } from "../helpers/servers.ts";
import { captureLogs } from "../helpers/logs.ts";
import { startLocalRelay, startService } from "../helpers/tunnel_stack.ts";

const GO_READ_LIMIT = 32768;
const GO_LISTENER_ID = "GOLISTENERID2345";

interface GoSession {
  envelope: Record<string, unknown>;
  largestMessage: number;
  echoed: number;
}

/** One Go-style accept: envelope → ok → echo `expect` bytes → Close 1000 "done". */
async function goAccept(address: string, expect: number): Promise<GoSession> {
  const ws = await connectWebSocket(address, { maxMessageSize: GO_READ_LIMIT });
  const first = await ws.receive();
  assert.ok(first && first.type === "text", "the envelope is a TEXT message");
  const envelope = JSON.parse(first.data);
  await ws.send(JSON.stringify({ version: 1, ok: true, listener_id: GO_LISTENER_ID }));
  let largestMessage = 0;
  let echoed = 0;
  while (echoed < expect) {
    const msg = await ws.receive();
    assert.ok(msg, "the sender ended the tunnel before sending everything");
    assert.equal(msg.type, "binary", "without negotiated features every data message is BINARY");
    largestMessage = Math.max(largestMessage, msg.data.length);
    await ws.send(msg.data);
    echoed += msg.data.length;
  }
  await ws.close(1000, "done");
  return { envelope, largestMessage, echoed };
}

Deno.test("interop: our sender through a Go-style listener (v1, 32 KiB read limit, 1000 done)", async () => {
  const logs = await captureLogs();
  const local = await startLocalRelay();
  const total = 1 << 20;
  const sessions: Promise<GoSession>[] = [];
  const stopControl = new AbortController();
  const up = Promise.withResolvers<void>();
  const control = runControlChannel({
    endpoint: local.endpoint,
    entity: local.relay.entity,
    tokens: local.relay.tokens,
    logger: getLogger({ side: "go-listener" }),
    signal: stopControl.signal,
    onAccept: (accept) => void sessions.push(goAccept(accept.address, total)),
    onConnectedChange: (isUp) => isUp && up.resolve(),
  });
  try {
    await up.promise;
    await using fwd = await startService(runPortForward, {
      relay: local.relay,
      target: "10.0.0.5:22",
    });
    const client = await fwd.connect();
    const data = new Uint8Array(total);
    for (let i = 0; i < total; i++) data[i] = (i * 31 + (i >> 12)) & 0xff;
    const [, back] = await Promise.all([writeAll(client, data), readAll(client)]);
    client.close();
    assert.deepEqual(back, data, "every byte came back, then EOF at the listener's 1000 done");

    assert.equal(sessions.length, 1);
    const session = await sessions[0];
    assert.equal(session.echoed, total);
    assert.ok(session.largestMessage <= GO_READ_LIMIT, `message of ${session.largestMessage} B`);
    // What a Go listener decodes: version, target, bridge_id, and metadata it ignores.
    assert.deepEqual(Object.keys(session.envelope), ["version", "target", "metadata", "bridge_id"]);
    assert.equal(session.envelope.version, 1);
    assert.equal(session.envelope.target, "10.0.0.5:22");
    assert.match(String(session.envelope.bridge_id), /^[A-Z2-7]{16}$/);

    const accepted = await logs.waitFor(/msg="listener accepted connection" side=sender/);
    assert.match(accepted, new RegExp(`listener_id=${GO_LISTENER_ID}`));
    const ended = await logs.waitFor(/msg="bridge ended" side=sender/);
    assert.match(ended, /cause=peer_close/);
    assert.doesNotMatch(ended, / error=/, "a Go listener's 1000 is a clean end in v1");
  } finally {
    stopControl.abort();
    await control;
    await local.server.close();
    await logs.stop();
  }
});
