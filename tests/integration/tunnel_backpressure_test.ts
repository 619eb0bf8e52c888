import assert from "node:assert/strict";
import { startPortForward, startStack, startTarget } from "../helpers/tunnel_stack.ts";

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
  const fwd = await startPortForward(stack.relay, target.addr);
  try {
    const client = await fwd.connect();
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
    await fwd.stop();
    await stack.close();
    await target.close();
  }
});
