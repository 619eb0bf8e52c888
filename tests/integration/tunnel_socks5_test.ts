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

async function startProxy(
  stack: Stack,
  extra: Partial<Parameters<typeof runSocks5Proxy>[0]> = {},
) {
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
    ...extra,
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
  const conn = await sendConnect(proxyPort, request);
  return { conn, reply: await readReply(conn) };
}

/** Greeting + CONNECT request, without waiting for the reply. */
async function sendConnect(proxyPort: number, request: number[]) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxyPort });
  await writeAll(conn, new Uint8Array([5, 1, 0]));
  assert.deepEqual([...await readExact(conn, 2)], [5, 0]);
  await writeAll(conn, new Uint8Array([5, 1, 0, ...request]));
  return conn;
}

async function readReply(conn: Deno.Conn): Promise<number[]> {
  const head = await readExact(conn, 4);
  const rest = await readExact(conn, head[3] === 4 ? 18 : 6);
  return [...head, ...rest];
}

/** A target dial that never returns: only the listener's stop ends it. */
const hangingDial = (_target: string, o: { signal?: AbortSignal }) =>
  new Promise<never>((_, reject) =>
    o.signal?.addEventListener("abort", () => reject(o.signal?.reason), { once: true })
  );

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

Deno.test("socks5: a stop during the relay dial replies 0x01 at once", async () => {
  const stack = await startStack({});
  const proxy = await startProxy(
    { ...stack, relay: { ...stack.relay, entity: "nobody-listens-here" } },
    { drainTimeoutMs: 60_000 },
  );
  try {
    const conn = await sendConnect(proxy.port, ipv4(22));
    await stack.logs.waitFor(/msg="relay dial failed \(retrying\)" side=sender/);
    const stopped = proxy.stop();
    assert.deepEqual(await readReply(conn), [5, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
    conn.close();
    await stopped;
    assert.equal(stack.logs.count(/msg="draining tunnels"/), 0);
  } finally {
    await proxy.stop();
    await stack.close();
  }
});

Deno.test("socks5: no reply to the envelope within the deadline is 0x04", async () => {
  const stack = await startStack({ handler: { pingIntervalMs: 0, dial: hangingDial } });
  const proxy = await startProxy({ ...stack, relay: { ...stack.relay, replyTimeoutMs: 50 } });
  try {
    const { conn, reply } = await socksConnect(proxy.port, ipv4(22));
    assert.deepEqual(reply, [5, 4, 0, 1, 0, 0, 0, 0, 0, 0]);
    conn.close();
    const line = await stack.logs.waitFor(/msg="envelope exchange failed" side=sender/);
    assert.match(line, /error="no reply from listener within 50ms"/);
  } finally {
    await proxy.stop();
    await stack.close();
  }
});

Deno.test("socks5: a tunnel cut by the listener is logged as WARN socks5 failed", async () => {
  const stack = await startStack({ drainTimeoutMs: 0 });
  const target = startTarget(upperEcho);
  const proxy = await startProxy(stack);
  try {
    const { conn, reply } = await socksConnect(proxy.port, ipv4(target.port));
    assert.equal(reply[1], 0);
    await writeAll(conn, enc.encode("abc"));
    assert.equal(dec.decode(await readExact(conn, 3)), "ABC");
    await stack.stopListener();
    const warn = await stack.logs.waitFor(/level=WARN msg="socks5 failed" side=sender/);
    assert.match(
      warn,
      /bridge_id=[A-Z2-7]{16} error="tunnel closed by peer before end of data \(close 1000: done\)"/,
    );
    await readAll(conn).catch(() => {});
    conn.close();
  } finally {
    await proxy.stop();
    await stack.close();
    await target.close();
  }
});
