import assert from "node:assert/strict";
import { getLogger } from "../../lib/observe/log.ts";
import { runSocks5Proxy } from "../../lib/sender/socks5_proxy.ts";
import { parseAllowlist } from "../../lib/tunnel/allowlist.ts";
import {
  dec,
  enc,
  readAll,
  readExact,
  type Stack,
  startStack,
  startTarget,
  upperEcho,
  writeAll,
} from "./tunnel_harness_test.ts";

async function startProxy(stack: Stack) {
  const ac = new AbortController();
  const bound = Promise.withResolvers<Deno.NetAddr>();
  const running = runSocks5Proxy({
    relay: stack.relay,
    bind: { hostname: "127.0.0.1", port: 0 },
    keepAlive: true,
    drainTimeoutMs: 5000,
    signal: ac.signal,
    logger: getLogger({ side: "sender" }),
    onListening: (a) => bound.resolve(a),
  });
  const addr = await bound.promise;
  return {
    port: addr.port,
    stop: () => {
      ac.abort(new DOMException("shutdown requested", "AbortError"));
      return running;
    },
  };
}

/** Greeting + CONNECT; returns the socket and the reply bytes. */
async function socksConnect(proxyPort: number, request: number[]) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxyPort });
  await writeAll(conn, new Uint8Array([5, 1, 0]));
  assert.deepEqual([...await readExact(conn, 2)], [5, 0]);
  await writeAll(conn, new Uint8Array([5, 1, 0, ...request]));
  const head = await readExact(conn, 4);
  const rest = await readExact(conn, head[3] === 4 ? 18 : 6);
  return { conn, reply: [...head, ...rest] };
}

const ipv4 = (port: number) => [1, 127, 0, 0, 1, port >> 8, port & 0xff];
const domain = (name: string, port: number) => [
  3,
  name.length,
  ...enc.encode(name),
  port >> 8,
  port & 0xff,
];

Deno.test("socks5: CONNECT by IPv4 and by domain, success reply after the listener said ok", async () => {
  const stack = await startStack({ allowlist: parseAllowlist(["127.0.0.1:*", "localhost:*"]) });
  const target = startTarget(upperEcho);
  const proxy = await startProxy(stack);
  try {
    await stack.logs.waitFor(/msg="socks5-proxy listening" side=sender bind=127\.0\.0\.1:\d+/);
    for (const request of [ipv4(target.port), domain("localhost", target.port)]) {
      const { conn, reply } = await socksConnect(proxy.port, request);
      assert.deepEqual(reply.slice(0, 8), [5, 0, 0, 1, 127, 0, 0, 1]);
      assert.equal((reply[8] << 8) | reply[9], proxy.port);
      await writeAll(conn, enc.encode("socks data"));
      await conn.closeWrite();
      assert.equal(dec.decode(await readAll(conn)), "SOCKS DATA<end>");
      conn.close();
    }
    assert.equal(
      stack.logs.count(/msg="connection requested" side=listener .*target=localhost:/),
      1,
    );
  } finally {
    await proxy.stop();
    await stack.close();
    await target.close();
  }
});

Deno.test("socks5: allowlist refusal is 0x02, a refused target is 0x05 (code logged)", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const refusedPort = closed.addr.port;
  closed.close();
  const stack = await startStack({ allowlist: parseAllowlist(["127.0.0.1:*"]) });
  const proxy = await startProxy(stack);
  try {
    let r = await socksConnect(proxy.port, domain("forbidden.example", 22));
    assert.deepEqual(r.reply, [5, 2, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert.equal((await readAll(r.conn)).length, 0);
    r.conn.close();
    await stack.logs.waitFor(
      /msg="target not allowed" side=listener .*target=forbidden\.example:22/,
    );
    assert.ok(
      stack.logs.lines.some((l) =>
        /msg="listener refused connection" side=sender .*error="connection rejected \(not_allowed\): target not allowed" listener_id=[A-Z2-7]{16} code=not_allowed/
          .test(l)
      ),
    );

    r = await socksConnect(proxy.port, ipv4(refusedPort));
    assert.deepEqual(r.reply, [5, 5, 0, 1, 0, 0, 0, 0, 0, 0]);
    r.conn.close();
    const line = await stack.logs.waitFor(/msg="dial target failed" side=listener/);
    assert.match(line, /code=connection_refused/);
    assert.match(line, /bridge_id=[A-Z2-7]{16}/);
  } finally {
    await proxy.stop();
    await stack.close();
  }
});

Deno.test("socks5: garbage gets one failure reply and a closed socket", async () => {
  const stack = await startStack({});
  const proxy = await startProxy(stack);
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
    await writeAll(conn, enc.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert.deepEqual([...await readAll(conn)], [5, 0xff]);
    conn.close();
  } finally {
    await proxy.stop();
    await stack.close();
  }
});
