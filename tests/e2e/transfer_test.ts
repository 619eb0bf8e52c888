/** Bytes through a port-forward: bulk both ways, many connections at once, and half-close. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { sha256 } from "../helpers/bytes.ts";
import { startListener, startPortForward, startRelayServer } from "../helpers/proc.ts";
import {
  randomBytes,
  readAll,
  readExactly,
  startEchoServer,
  startRequestReplyServer,
  writeAll,
} from "../helpers/servers.ts";

const MiB = 1024 * 1024;

Deno.test("transfer: 64 MiB each way through a port-forward, SHA-256 equal", async () => {
  await using echo = startEchoServer();
  await using relay = await startRelayServer();
  await using _listener = await startListener(relay);
  await using pf = await startPortForward(relay, echo.addr);
  const payload = randomBytes(64 * MiB);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: pf.port });
  try {
    const send = (async () => {
      for (let off = 0; off < payload.length; off += 256 * 1024) {
        await writeAll(conn, payload.subarray(off, off + 256 * 1024));
      }
      await conn.closeWrite();
    })();
    // Hash while reading, so the test never holds a second 64 MiB copy.
    const hash = createHash("sha256");
    let received = 0;
    const buf = new Uint8Array(256 * 1024);
    while (true) {
      const n = await conn.read(buf);
      if (n === null) break;
      hash.update(buf.subarray(0, n));
      received += n;
    }
    await send;
    assert.equal(received, payload.length);
    assert.equal(hash.digest("hex"), sha256(payload));
  } finally {
    conn.close();
  }
});

Deno.test("transfer: 200 concurrent connections each echo 64 KiB", async () => {
  await using echo = startEchoServer();
  await using relay = await startRelayServer();
  await using _listener = await startListener(relay, { globalArgs: ["--log-level", "info"] });
  await using pf = await startPortForward(relay, echo.addr, {
    globalArgs: ["--log-level", "info"],
  });
  const one = async () => {
    const payload = randomBytes(64 * 1024);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: pf.port });
    try {
      const [, back] = await Promise.all([
        writeAll(conn, payload),
        readExactly(conn, payload.length),
      ]);
      assert.equal(sha256(back), sha256(payload));
    } finally {
      conn.close();
    }
  };
  await Promise.all(Array.from({ length: 200 }, one));
  assert.equal(echo.accepted, 200);
});

Deno.test("transfer: half-close — the client shuts its write side and still reads the reply", async () => {
  const reply = (req: Uint8Array) => new TextEncoder().encode(`${req.length} ${sha256(req)}\n`);
  await using target = startRequestReplyServer(reply);
  await using relay = await startRelayServer();
  await using _listener = await startListener(relay);
  await using pf = await startPortForward(relay, target.addr);
  const request = randomBytes(256 * 1024);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: pf.port });
  try {
    await writeAll(conn, request);
    await conn.closeWrite();
    const answer = new TextDecoder().decode(await readAll(conn));
    assert.equal(answer, `${request.length} ${sha256(request)}\n`);
  } finally {
    conn.close();
  }
});
