import assert from "node:assert/strict";
import { readAll, readExactly, writeAll } from "../helpers/servers.ts";
import {
  dec,
  echo,
  enc,
  hangingDial,
  startPortForward,
  startStack,
  startTarget,
  upperEcho,
} from "../helpers/tunnel_stack.ts";

/** Resolves with null at EOF or when the connection was reset (both end the client's wait). */
function readEnd(conn: Deno.Conn): Promise<number | null> {
  return conn.read(new Uint8Array(64)).catch(() => null);
}

Deno.test("port-forward: round trip with half-close (request, FIN, response)", async () => {
  await using target = startTarget(upperEcho);
  await using stack = await startStack({ allowlist: null });
  await using fwd = await startPortForward(stack.relay, target.addr);
  await stack.logs.waitFor(
    /msg="port-forward listening" side=sender bind=127\.0\.0\.1:\d+ target=/,
  );
  const client = await fwd.connect();
  await writeAll(client, enc.encode("hello through the relay"));
  await client.closeWrite();
  // The response arrives after our FIN: half-close was negotiated end to end.
  assert.equal(dec.decode(await readAll(client)), "HELLO THROUGH THE RELAY<end>");
  client.close();
  const senderLine = await stack.logs.waitFor(/msg="bridge ended" side=sender/);
  assert.match(senderLine, /cause=local_close/);
  assert.doesNotMatch(senderLine, /_err=/);
  const listenerLine = await stack.logs.waitFor(/msg="bridge ended" side=listener/);
  assert.match(listenerLine, /bridge_id=[A-Z2-7]{16}/);
  assert.match(listenerLine, /tcp_to_ws=28 ws_to_tcp=23/);
  assert.ok(
    stack.logs.lines.some((l) =>
      /msg="listener accepted connection" side=sender bridge_id=[A-Z2-7]{16} target=127\.0\.0\.1:\d+ listener_id=[A-Z2-7]{16}/
        .test(l)
    ),
  );
});

Deno.test("port-forward: a Go-like sender (no features) gets v1 and bulk data intact", async () => {
  await using target = startTarget(echo);
  await using stack = await startStack({ allowlist: null });
  await using fwd = await startPortForward(stack.relay, target.addr, { features: [] });
  const client = await fwd.connect();
  const data = new Uint8Array(1_000_000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 10)) & 0xff;
  const [, back] = await Promise.all([writeAll(client, data), readExactly(client, data.length)]);
  assert.deepEqual(back, data);
  client.close();
  const line = await stack.logs.waitFor(/msg="bridge ended" side=listener/);
  assert.match(line, /cause=peer_close/);
  assert.match(line, /tcp_to_ws=1000000 ws_to_tcp=1000000/);
  assert.ok(!stack.logs.lines.some((l) => l.includes("x-aztunnel-features")));
});

Deno.test("port-forward: shutdown stops accepting and drains the open tunnel", async () => {
  await using target = startTarget(echo);
  await using stack = await startStack({ allowlist: null });
  await using fwd = await startPortForward(stack.relay, target.addr);
  const client = await fwd.connect();
  await writeAll(client, enc.encode("ping"));
  assert.equal(dec.decode(await readExactly(client, 4)), "ping");
  const stopped = fwd.stop();
  // New connections fail once the listener socket is closed (refused, or reset/EOF from the
  // backlog)…
  const late = await fwd.connect().catch(() => null);
  if (late) {
    assert.equal(await late.read(new Uint8Array(1)).catch(() => null), null);
    late.close();
  }
  // …while the open tunnel keeps working until its client is done.
  await writeAll(client, enc.encode("pong"));
  assert.equal(dec.decode(await readExactly(client, 4)), "pong");
  client.close();
  await stopped;
  await stack.logs.waitFor(
    /msg="draining tunnels" side=sender count=1 timeout=5s\s/,
  );
  await stack.logs.waitFor(/msg="drain complete" side=sender\s/);
});

Deno.test("port-forward: a stop during the relay dial closes the client at once, no drain", async () => {
  await using stack = await startStack({ allowlist: null });
  await using fwd = await startPortForward(
    { ...stack.relay, entity: "nobody-listens-here" },
    "127.0.0.1:9",
    { drainTimeoutMs: 60_000 },
  );
  const client = await fwd.connect();
  await stack.logs.waitFor(/msg="relay dial failed \(retrying\)" side=sender/);
  const started = performance.now();
  await fwd.stop();
  const elapsed = performance.now() - started;
  assert.ok(elapsed < 5_000, `stopping took ${elapsed} ms`);
  assert.equal(await readEnd(client), null);
  client.close();
  assert.equal(stack.logs.count(/msg="draining tunnels"/), 0);
  assert.equal(
    stack.logs.count(/msg="(forward|relay dial) failed"/),
    0,
    "an abort is no failure",
  );
});

Deno.test("port-forward: a second stop request cuts the draining tunnel at once", async () => {
  await using target = startTarget(echo);
  await using stack = await startStack({ allowlist: null });
  await using fwd = await startPortForward(stack.relay, target.addr, { drainTimeoutMs: 60_000 });
  const client = await fwd.connect();
  await writeAll(client, enc.encode("ping"));
  assert.equal(dec.decode(await readExactly(client, 4)), "ping");
  const started = performance.now();
  const stopped = fwd.stop();
  await stack.logs.waitFor(/msg="draining tunnels" side=sender count=1 timeout=1m0s\s/);
  fwd.force();
  await stopped;
  assert.ok(performance.now() - started < 5_000);
  await stack.logs.waitFor(
    /msg="second signal, closing 1 tunnels now" side=sender count=1\s/,
  );
  const line = await stack.logs.waitFor(/msg="bridge ended" side=sender/);
  assert.match(line, /cause=user_cancel/);
  assert.equal(await readEnd(client), null);
  client.close();
});

Deno.test("port-forward: no reply to the envelope within the deadline closes the client", async () => {
  // A listener that took the rendezvous and then hangs (its target dial never returns).
  await using stack = await startStack({
    allowlist: null,
    handler: { pingIntervalMs: 0, dial: hangingDial },
  });
  await using fwd = await startPortForward({ ...stack.relay, replyTimeoutMs: 100 }, "127.0.0.1:9");
  const client = await fwd.connect();
  assert.equal(await readEnd(client), null);
  client.close();
  const line = await stack.logs.waitFor(/msg="envelope exchange failed" side=sender/);
  assert.match(line, /target=127\.0\.0\.1:9 error="no reply from listener within 100ms"/);
});
