import assert from "node:assert/strict";
import type { SenderRelayConfig } from "../../lib/sender/open_tunnel.ts";
import { runSocks5Proxy, type Socks5ProxyOptions } from "../../lib/sender/socks5_proxy.ts";
import { parseAllowlist } from "../../lib/tunnel/allowlist.ts";
import { readAll, readExactly, writeAll } from "../helpers/servers.ts";
import {
  dec,
  enc,
  hangingDial,
  startService,
  startStack,
  startTarget,
  upperEcho,
} from "../helpers/tunnel_stack.ts";

/** socks5-proxy through `relay` (see startService). */
function startProxy(relay: SenderRelayConfig, extra: Partial<Socks5ProxyOptions> = {}) {
  return startService(runSocks5Proxy, { relay, ...extra });
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
  assert.deepEqual([...await readExactly(conn, 2)], [5, 0]);
  await writeAll(conn, new Uint8Array([5, 1, 0, ...request]));
  return conn;
}

async function readReply(conn: Deno.Conn): Promise<number[]> {
  const head = await readExactly(conn, 4);
  const rest = await readExactly(conn, head[3] === 4 ? 18 : 6);
  return [...head, ...rest];
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
  await using target = startTarget(upperEcho);
  await using stack = await startStack({
    allowlist: parseAllowlist(["127.0.0.1:*", "localhost:*"]),
  });
  await using proxy = await startProxy(stack.relay);
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
});

Deno.test("socks5: allowlist refusal is 0x02, a refused target is 0x05 (code logged)", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const refusedPort = closed.addr.port;
  closed.close();
  await using stack = await startStack({ allowlist: parseAllowlist(["127.0.0.1:*"]) });
  await using proxy = await startProxy(stack.relay);
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
});

Deno.test("socks5: garbage gets one failure reply and a closed socket", async () => {
  await using stack = await startStack({});
  await using proxy = await startProxy(stack.relay);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
  await writeAll(conn, enc.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  assert.deepEqual([...await readAll(conn)], [5, 0xff]);
  conn.close();
});

Deno.test("socks5: a stop during the relay dial replies 0x01 at once", async () => {
  await using stack = await startStack({});
  await using proxy = await startProxy(
    { ...stack.relay, entity: "nobody-listens-here" },
    { drainTimeoutMs: 60_000 },
  );
  const conn = await sendConnect(proxy.port, ipv4(22));
  await stack.logs.waitFor(/msg="relay dial failed \(retrying\)" side=sender/);
  const stopped = proxy.stop();
  assert.deepEqual(await readReply(conn), [5, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
  conn.close();
  await stopped;
  assert.equal(stack.logs.count(/msg="draining tunnels"/), 0);
});

Deno.test("socks5: no reply to the envelope within the deadline is 0x04", async () => {
  await using stack = await startStack({ handler: { pingIntervalMs: 0, dial: hangingDial } });
  await using proxy = await startProxy({ ...stack.relay, replyTimeoutMs: 50 });
  const { conn, reply } = await socksConnect(proxy.port, ipv4(22));
  assert.deepEqual(reply, [5, 4, 0, 1, 0, 0, 0, 0, 0, 0]);
  conn.close();
  const line = await stack.logs.waitFor(/msg="envelope exchange failed" side=sender/);
  assert.match(line, /error="no reply from listener within 50ms"/);
});

Deno.test("socks5: a tunnel cut by the listener is logged as WARN socks5 failed", async () => {
  await using target = startTarget(upperEcho);
  await using stack = await startStack({ drainTimeoutMs: 0 });
  await using proxy = await startProxy(stack.relay);
  const { conn, reply } = await socksConnect(proxy.port, ipv4(target.port));
  assert.equal(reply[1], 0);
  await writeAll(conn, enc.encode("abc"));
  assert.equal(dec.decode(await readExactly(conn, 3)), "ABC");
  await stack.stopListener();
  const warn = await stack.logs.waitFor(/level=WARN msg="socks5 failed" side=sender/);
  assert.match(
    warn,
    /bridge_id=[A-Z2-7]{16} error="tunnel closed by peer before end of data \(close 1001: going away\)"/,
  );
  await readAll(conn).catch(() => {});
  conn.close();
});
