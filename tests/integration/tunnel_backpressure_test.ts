import assert from "node:assert/strict";
import { getLogger } from "../../lib/observe/log.ts";
import { runPortForward } from "../../lib/sender/port_forward.ts";
import { startStack, startTarget } from "./tunnel_harness_test.ts";

Deno.test("backpressure: a target that does not read stalls the client, not memory", async () => {
  const release = Promise.withResolvers<void>();
  let received = 0;
  const stack = await startStack({});
  const target = startTarget(async (conn) => {
    await release.promise;
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) return;
      received += n;
    }
  });
  const ac = new AbortController();
  const bound = Promise.withResolvers<Deno.NetAddr>();
  const forwarding = runPortForward({
    relay: stack.relay,
    target: target.addr,
    bind: { hostname: "127.0.0.1", port: 0 },
    keepAlive: true,
    drainTimeoutMs: 5000,
    signal: ac.signal,
    logger: getLogger({ side: "sender" }),
    onListening: (a) => bound.resolve(a),
  });
  try {
    const client = await Deno.connect({ hostname: "127.0.0.1", port: (await bound.promise).port });
    const chunk = new Uint8Array(65536).fill(42);
    let sent = 0;
    let pending: Promise<number> | undefined;
    // Write until a write makes no progress for a while: every layer is full and pushing back.
    while (sent < 64 * 1024 * 1024) {
      const w = client.write(chunk);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const stalled = new Promise<"stalled">((r) => timer = setTimeout(() => r("stalled"), 500));
      const n = await Promise.race([w, stalled]);
      clearTimeout(timer);
      if (n === "stalled") {
        pending = w;
        break;
      }
      sent += n;
    }
    assert.ok(pending, `never pushed back after ${sent} bytes`);
    assert.ok(sent < 64 * 1024 * 1024, `buffered ${sent} bytes along the path`);
    // Releasing the target drains everything; nothing was lost on the way.
    release.resolve();
    sent += await pending;
    await client.closeWrite();
    assert.equal(await client.read(new Uint8Array(1)), null);
    client.close();
    assert.equal(received, sent);
  } finally {
    release.resolve();
    ac.abort();
    await forwarding;
    await stack.close();
    await target.close();
  }
});
