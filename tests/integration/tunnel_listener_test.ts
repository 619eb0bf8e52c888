import assert from "node:assert/strict";
import { readAll, readExactly, roundTrip, writeAll } from "../helpers/servers.ts";
import {
  dec,
  echo,
  enc,
  hangingDial,
  startPortForward,
  startStack,
  startTarget,
} from "../helpers/tunnel_stack.ts";

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

Deno.test("listener: at max connections the accept is refused with 503 and the sender retries", async () => {
  await using target = startTarget(echo);
  await using stack = await startStack({ maxConnections: 1 });
  await using fwd = await startPortForward(stack.relay, target.addr);
  const first = await fwd.connect();
  await roundTrip(first, "first");
  const second = await fwd.connect();
  await writeAll(second, enc.encode("second"));
  const dropped = await stack.logs.waitFor(/msg=accept_dropped side=listener/);
  assert.match(dropped, /reason=semaphore_full/);
  assert.match(dropped, /accept_id=[A-Z2-7]{16}/);
  const retry = await stack.logs.waitFor(/msg="relay dial failed \(retrying\)" side=sender/);
  assert.match(retry, /status=503/);
  // The second tunnel is served once the first one ends.
  first.close();
  assert.equal(dec.decode(await readExactly(second, 6)), "second");
  second.close();
});

Deno.test("listener: shutdown lets an open tunnel finish within the drain timeout", async () => {
  await using target = startTarget(echo);
  await using stack = await startStack({ drainTimeoutMs: 10_000 });
  await using fwd = await startPortForward(stack.relay, target.addr);
  const client = await fwd.connect();
  await roundTrip(client, "before");
  const stopped = stack.stopListener();
  await stack.logs.waitFor(/msg=control_ended side=listener .*reason=context_cancelled/);
  await roundTrip(client, "during drain");
  client.close();
  await stopped;
  const line = await stack.logs.waitFor(/msg="bridge ended" side=listener/);
  assert.match(line, /cause=peer_close/);
  await stack.logs.waitFor(/msg="draining tunnels" side=listener .*count=1 timeout=10s\s/);
  await stack.logs.waitFor(/msg="drain complete" side=listener/);
});

Deno.test("listener: tunnels still open at the drain deadline are cancelled (user_cancel)", async () => {
  await using target = startTarget(echo);
  await using stack = await startStack({ drainTimeoutMs: 50 });
  await using fwd = await startPortForward(stack.relay, target.addr);
  const client = await fwd.connect();
  await roundTrip(client, "hello");
  await stack.stopListener();
  const line = await stack.logs.waitFor(/msg="bridge ended" side=listener/);
  assert.match(line, /cause=user_cancel/);
  assert.doesNotMatch(line, / error=/);
  assert.match(
    await stack.logs.waitFor(/msg="draining tunnels" side=listener/),
    /listener_id=[A-Z2-7]{16} count=1 timeout=50ms\s/,
  );
  assert.match(
    await stack.logs.waitFor(/msg="drain timed out, closing 1 tunnels" side=listener/),
    /count=1\s/,
  );
  await readAll(client).catch(() => {});
  client.close();
  // For the sender the tunnel was cut before the listener's end of data: a failure, not a clean
  // end. The listener stopping says 1001 "going away".
  const cut = "tunnel closed by peer before end of data (close 1001: going away)";
  const sender = await stack.logs.waitFor(/msg="bridge ended" side=sender/);
  assert.match(sender, /cause=peer_close/);
  assert.ok(sender.includes(`error="${cut}"`), sender);
  const warn = await stack.logs.waitFor(/level=WARN msg="forward failed" side=sender/);
  assert.match(warn, new RegExp(`bridge_id=[A-Z2-7]{16} error="${escape(cut)}"`));
});

Deno.test("listener: a stop abandons accepts still dialing their target; no drain wait", async () => {
  await using stack = await startStack({
    drainTimeoutMs: 60_000,
    handler: {
      pingIntervalMs: 0,
      // A target that never answers the dial: only the stop can end it.
      dial: hangingDial,
    },
  });
  await using fwd = await startPortForward(stack.relay, "127.0.0.1:9");
  const client = await fwd.connect();
  await stack.logs.waitFor(/msg="connection requested" side=listener/);
  const started = performance.now();
  await stack.stopListener();
  const elapsed = performance.now() - started;
  assert.ok(elapsed < 5_000, `stopping took ${elapsed} ms`);
  assert.equal(stack.logs.count(/msg="draining tunnels"/), 0);
  // The sender learns the tunnel will not open, and its client is closed.
  await stack.logs.waitFor(/msg="listener refused connection" side=sender/);
  assert.equal(await client.read(new Uint8Array(8)).catch(() => null), null);
  client.close();
});

Deno.test("listener: an open tunnel survives the relay recycling the control channel", async () => {
  await using target = startTarget(echo);
  await using stack = await startStack({});
  await using fwd = await startPortForward(stack.relay, target.addr);
  const client = await fwd.connect();
  await roundTrip(client, "before the recycle");
  // What Azure does to every control channel once a day.
  assert.equal(stack.server.recycleListeners(), 1);
  await stack.logs.waitFor(/msg="control channel disconnected, reconnecting" side=listener/);
  await roundTrip(client, "after the recycle");
  await stack.logs.waitFor(/msg=control_started side=listener/, 20_000, 2);
  // The reconnected listener takes new tunnels while the old one is still open.
  const second = await fwd.connect();
  await roundTrip(second, "new tunnel");
  await roundTrip(client, "old tunnel still open");
  second.close();
  client.close();
  const ended = await stack.logs.waitFor(/msg="bridge ended" side=listener/);
  assert.match(ended, /cause=peer_close/);
});
