import assert from "node:assert/strict";
import { joinHostPort } from "../../lib/net/host_port.ts";
import { configureLogging, resetLogging } from "../../lib/observe/log.ts";
import { Metrics } from "../../lib/observe/metrics.ts";
import {
  DEFAULT_OPS_TIMEOUTS,
  OpsServerError,
  parseListenAddr,
  type Readiness,
  startOpsServer,
} from "../../lib/observe/ops_server.ts";
import { within } from "../helpers/fake_relay.ts";
import { assertPromtoolClean, findPromtool } from "../helpers/metrics.ts";

async function get(addr: string, path: string, method = "GET") {
  const res = await fetch(`http://${addr}${path}`, { method });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

const enc = new TextEncoder();
const dec = new TextDecoder();

async function rawConnect(addr: string): Promise<Deno.TcpConn> {
  const port = Number(addr.slice(addr.lastIndexOf(":") + 1));
  return await Deno.connect({ hostname: "127.0.0.1", port });
}

async function send(conn: Deno.Conn, text: string): Promise<void> {
  const bytes = enc.encode(text);
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/**
 * Reads one response (head plus content-length body, none for a HEAD request); the head's lines are
 * lower-cased; `rest` is what followed it.
 */
async function readResponse(
  conn: Deno.Conn,
  carry = "",
  noBody = false,
): Promise<{ head: string[]; body: string; rest: string }> {
  let text = carry;
  const buf = new Uint8Array(64 * 1024);
  for (;;) {
    const end = text.indexOf("\r\n\r\n");
    if (end >= 0) {
      const head = text.slice(0, end).split("\r\n").map((l) => l.toLowerCase());
      const length = noBody
        ? 0
        : Number(head.find((l) => l.startsWith("content-length:"))?.slice(15) ?? 0);
      if (text.length >= end + 4 + length) {
        return {
          head,
          body: text.slice(end + 4, end + 4 + length),
          rest: text.slice(end + 4 + length),
        };
      }
    }
    const n = await conn.read(buf);
    if (n === null) throw new Error(`EOF inside a response: ${JSON.stringify(text)}`);
    text += dec.decode(buf.subarray(0, n));
  }
}

/** Resolves with what the peer did once we stop hearing from it: a clean EOF or a reset. */
async function untilClosed(conn: Deno.Conn): Promise<"eof" | "reset"> {
  const buf = new Uint8Array(64 * 1024);
  try {
    while ((await conn.read(buf)) !== null) {
      // discard
    }
    return "eof";
  } catch (err) {
    if (err instanceof Deno.errors.ConnectionReset) return "reset";
    throw err;
  }
}

Deno.test("parseListenAddr accepts Go listen forms", () => {
  assert.deepEqual(parseListenAddr("127.0.0.1:9090"), { hostname: "127.0.0.1", port: 9090 });
  assert.deepEqual(parseListenAddr(":9090"), { hostname: "0.0.0.0", port: 9090 });
  assert.deepEqual(parseListenAddr("[::1]:0"), { hostname: "::1", port: 0 });
  assert.deepEqual(parseListenAddr("localhost:0"), { hostname: "localhost", port: 0 });
  for (const bad of ["", "9090", "host", "host:", "a:b", "::1:80", "h:70000", "[::1]"]) {
    assert.equal(parseListenAddr(bad), null, bad);
  }
  assert.equal(joinHostPort("::1", 80), "[::1]:80");
  assert.equal(joinHostPort("127.0.0.1", 80), "127.0.0.1:80");
});

Deno.test("ops server serves metrics, healthz and readyz and logs its address", async () => {
  const lines: string[] = [];
  await configureLogging({ level: "info", write: (l) => lines.push(l) });
  const metrics = new Metrics();
  metrics.bridgeStarted("listener", "10.0.0.5:22");
  let readiness: Readiness = { ready: false, reason: "control channel\ndisconnected" };
  const srv = startOpsServer({ addr: "127.0.0.1:0", metrics, readiness: () => readiness });
  try {
    assert.match(srv.addr, /^127\.0\.0\.1:\d+$/);
    assert.notEqual(srv.addr, "127.0.0.1:0");
    assert.equal(lines.length, 1);
    assert.match(lines[0], new RegExp(`msg="metrics server listening" addr=${srv.addr}\\n$`));

    const m = await get(srv.addr, "/metrics");
    assert.equal(m.status, 200);
    assert.equal(m.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    assert.match(m.body, /^aztunnel_control_channel_connected 0$/m);
    assert.match(
      m.body,
      /^aztunnel_active_connections\{role="listener",target="10.0.0.5:22"\} 1$/m,
    );
    assert.match(m.body, /^process_resident_memory_bytes \d+$/m);

    assert.deepEqual(
      [(await get(srv.addr, "/healthz")).status, (await get(srv.addr, "/healthz")).body],
      [200, "ok\n"],
    );
    const notReady = await get(srv.addr, "/readyz");
    assert.equal(notReady.status, 503);
    assert.equal(notReady.body, "not ready: control channel disconnected\n");
    readiness = { ready: true };
    const ready = await get(srv.addr, "/readyz");
    assert.deepEqual([ready.status, ready.body], [200, "ready\n"]);

    assert.equal((await get(srv.addr, "/")).status, 404);
    assert.equal((await get(srv.addr, "/metrics/extra")).status, 404);
    const head = await get(srv.addr, "/healthz", "HEAD");
    assert.deepEqual([head.status, head.body], [200, ""]);
    const post = await get(srv.addr, "/metrics", "POST");
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
  } finally {
    await srv.close();
    await resetLogging();
  }
});

Deno.test("ops server readiness defaults to ready; close is idempotent", async () => {
  const srv = startOpsServer({ addr: "127.0.0.1:0", metrics: new Metrics() });
  try {
    assert.equal((await get(srv.addr, "/readyz")).status, 200);
  } finally {
    await Promise.all([srv.close(), srv.close()]);
  }
  await assert.rejects(fetch(`http://${srv.addr}/healthz`));
});

Deno.test("ops server errors carry codes", async () => {
  assert.throws(
    () => startOpsServer({ addr: "nope", metrics: new Metrics() }),
    (e) => e instanceof OpsServerError && e.code === "invalid_addr",
  );
  const first = startOpsServer({ addr: "127.0.0.1:0", metrics: new Metrics() });
  try {
    assert.throws(
      () => startOpsServer({ addr: first.addr, metrics: new Metrics() }),
      (e) => e instanceof OpsServerError && e.code === "listen_failed",
    );
  } finally {
    await first.close();
  }
});

Deno.test("ops server timeouts default to Go's: 10 s header and write, 60 s idle", () => {
  assert.deepEqual(DEFAULT_OPS_TIMEOUTS, { headerMs: 10_000, writeMs: 10_000, idleMs: 60_000 });
});

Deno.test("ops server close() does not wait for a slow-loris client holding half a request", async () => {
  const srv = startOpsServer({ addr: "127.0.0.1:0", metrics: new Metrics() });
  const conn = await rawConnect(srv.addr);
  try {
    // A full request first: then the server certainly holds this connection.
    await send(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    const first = await readResponse(conn);
    assert.equal(first.head[0], "http/1.1 200 ok");
    assert.equal(first.body, "ok\n");
    await send(conn, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    // With the default 10 s header timeout only close() itself can end this quickly.
    await within(srv.close(), 2_000, "close()");
    // FIN, or RST if the server had not yet read the half request when it dropped the connection.
    assert.match(await untilClosed(conn), /^(?:eof|reset)$/);
  } finally {
    conn.close();
    await srv.close();
  }
});

Deno.test("ops server close() is bounded by the write timeout for a client that never reads", async () => {
  // Far more than the socket buffers hold, so the write blocks on the silent client.
  const big = "#".repeat(64 * 1024 * 1024);
  const srv = startOpsServer({
    addr: "127.0.0.1:0",
    metrics: { render: () => big },
    timeouts: { writeMs: 200 },
  });
  const conn = await rawConnect(srv.addr);
  try {
    const healthy = await rawConnect(srv.addr);
    try {
      // Our request is accepted and being answered once a later request on another connection is.
      await send(conn, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
      const buf = new Uint8Array(16);
      assert.ok((await conn.read(buf)) !== null);
      await send(healthy, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
      assert.equal((await readResponse(healthy)).body, "ok\n");
    } finally {
      healthy.close();
    }
    await within(srv.close(), 5_000, "close()");
  } finally {
    conn.close();
    await srv.close();
  }
});

Deno.test("ops server drops a connection whose head is late, and one idle too long", async () => {
  const srv = startOpsServer({
    addr: "127.0.0.1:0",
    metrics: new Metrics(),
    timeouts: { headerMs: 50, idleMs: 50 },
  });
  try {
    const slow = await rawConnect(srv.addr);
    try {
      await send(slow, "GET /metrics HTTP/1.1\r\n");
      assert.match(await untilClosed(slow), /^(?:eof|reset)$/);
    } finally {
      slow.close();
    }
    const idle = await rawConnect(srv.addr);
    try {
      await send(idle, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
      const res = await readResponse(idle);
      assert.deepEqual([res.head[0], res.body], ["http/1.1 200 ok", "ready\n"]);
      assert.ok(!res.head.includes("connection: close"), "kept alive");
      assert.equal(await untilClosed(idle), "eof");
    } finally {
      idle.close();
    }
    // The server itself is unaffected.
    assert.equal((await get(srv.addr, "/healthz")).status, 200);
  } finally {
    await srv.close();
  }
});

Deno.test("ops server speaks plain HTTP/1.x: 1.0, pipelining, absolute form, bad and oversized heads", async () => {
  const srv = startOpsServer({ addr: "127.0.0.1:0", metrics: new Metrics() });
  const exchange = async (request: string) => {
    const conn = await rawConnect(srv.addr);
    try {
      await send(conn, request);
      const first = await readResponse(conn);
      return { first, conn };
    } catch (err) {
      conn.close();
      throw err;
    }
  };
  try {
    {
      const { first, conn } = await exchange("GET /healthz HTTP/1.0\r\n\r\n");
      assert.deepEqual([first.head[0], first.body], ["http/1.1 200 ok", "ok\n"]);
      assert.ok(first.head.includes("connection: close"));
      assert.equal(await untilClosed(conn), "eof");
      conn.close();
    }
    {
      const { first, conn } = await exchange(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nHEAD /readyz HTTP/1.1\nHost: x\nConnection: close\n\n",
      );
      assert.equal(first.body, "ok\n");
      const second = await readResponse(conn, first.rest, true);
      assert.equal(second.head[0], "http/1.1 200 ok");
      assert.ok(second.head.includes("content-length: 6"), "HEAD keeps the length");
      assert.equal(await untilClosed(conn), "eof");
      conn.close();
    }
    {
      const { first, conn } = await exchange(
        "GET http://ops.example/x/../healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
      );
      assert.equal(first.body, "ok\n");
      conn.close();
    }
    {
      const { first, conn } = await exchange(
        "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
      );
      assert.equal(first.head[0], "http/1.1 405 method not allowed");
      // The body was not read, so the connection cannot carry another request.
      assert.ok(first.head.includes("connection: close"));
      conn.close();
    }
    for (
      const [request, status] of [
        ["nonsense\r\n\r\n", "http/1.1 400 bad request"],
        ["GET /healthz HTTP/1.1\r\nno colon\r\n\r\n", "http/1.1 400 bad request"],
        [
          `GET /healthz HTTP/1.1\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`,
          "http/1.1 431 request header fields too large",
        ],
      ]
    ) {
      const { first, conn } = await exchange(request);
      assert.equal(first.head[0], status, request.slice(0, 40));
      assert.ok(first.head.includes("connection: close"));
      conn.close();
    }
  } finally {
    await srv.close();
  }
});

const hasPromtool = findPromtool() !== null;
Deno.test({
  name: "ops server /metrics passes promtool check metrics" +
    (hasPromtool ? "" : " (ignored: promtool not found; Debian package `prometheus`)"),
  ignore: !hasPromtool,
  async fn() {
    const metrics = new Metrics({ version: "v0.0.0-test" });
    const odd = 'odd "target"\\\n:1';
    metrics.bridgeStarted("sender", odd);
    metrics.bridgeEnded("sender", odd, { status: "error", bytesToRelay: 3, bytesFromRelay: 4 }, 1);
    metrics.connectionError("sender", "relay_failed");
    metrics.dialDuration("sender", 1.5);
    metrics.tokenFetch("entra", "ok", 0.2);
    metrics.setControlConnected(true);
    const srv = startOpsServer({ addr: "127.0.0.1:0", metrics });
    try {
      const { body } = await get(srv.addr, "/metrics");
      await assertPromtoolClean(body, "ops server /metrics");
    } finally {
      await srv.close();
    }
  },
});
