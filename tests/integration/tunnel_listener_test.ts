import assert from "node:assert/strict";
import { getLogger } from "../../lib/observe/log.ts";
import { runPortForward } from "../../lib/sender/port_forward.ts";
import type { RelayConfig } from "../../lib/sender/open_tunnel.ts";
import {
  dec,
  echo,
  enc,
  readAll,
  readExact,
  startStack,
  startTarget,
  writeAll,
} from "./tunnel_harness_test.ts";

async function startForward(relay: RelayConfig, target: string) {
  const ac = new AbortController();
  const bound = Promise.withResolvers<Deno.NetAddr>();
  const running = runPortForward({
    relay,
    target,
    bind: { hostname: "127.0.0.1", port: 0 },
    keepAlive: true,
    drainTimeoutMs: 5000,
    signal: ac.signal,
    logger: getLogger({ side: "sender" }),
    onListening: (a) => bound.resolve(a),
  });
  const addr = await bound.promise;
  return {
    connect: () => Deno.connect({ hostname: "127.0.0.1", port: addr.port }),
    stop: () => {
      ac.abort(new DOMException("shutdown requested", "AbortError"));
      return running;
    },
  };
}

async function roundTrip(conn: Deno.Conn, text: string) {
  await writeAll(conn, enc.encode(text));
  assert.equal(dec.decode(await readExact(conn, text.length)), text);
}

Deno.test("listener: at max connections the accept is refused with 503 and the sender retries", async () => {
  const stack = await startStack({ maxConnections: 1 });
  const target = startTarget(echo);
  const fwd = await startForward(stack.relay, target.addr);
  try {
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
    assert.equal(dec.decode(await readExact(second, 6)), "second");
    second.close();
  } finally {
    await fwd.stop();
    await stack.close();
    await target.close();
  }
});

Deno.test("listener: shutdown lets an open tunnel finish within the drain timeout", async () => {
  const stack = await startStack({ drainTimeoutMs: 10_000 });
  const target = startTarget(echo);
  const fwd = await startForward(stack.relay, target.addr);
  try {
    const client = await fwd.connect();
    await roundTrip(client, "before");
    const stopped = stack.stopListener();
    await stack.logs.waitFor(/msg=control_ended side=listener .*reason=context_cancelled/);
    await roundTrip(client, "during drain");
    client.close();
    await stopped;
    const line = await stack.logs.waitFor(/msg="bridge ended" side=listener/);
    assert.match(line, /cause=peer_close/);
  } finally {
    await fwd.stop();
    await stack.close();
    await target.close();
  }
});

Deno.test("listener: tunnels still open at the drain deadline are cancelled (user_cancel)", async () => {
  const stack = await startStack({ drainTimeoutMs: 50 });
  const target = startTarget(echo);
  const fwd = await startForward(stack.relay, target.addr);
  try {
    const client = await fwd.connect();
    await roundTrip(client, "hello");
    await stack.stopListener();
    const line = await stack.logs.waitFor(/msg="bridge ended" side=listener/);
    assert.match(line, /cause=user_cancel/);
    assert.doesNotMatch(line, / error=/);
    assert.equal((await readAll(client)).length, 0);
    client.close();
  } finally {
    await fwd.stop();
    await stack.close();
    await target.close();
  }
});
