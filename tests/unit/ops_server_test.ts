import assert from "node:assert/strict";
import { configureLogging, resetLogging } from "../../lib/observe/log.ts";
import { Metrics } from "../../lib/observe/metrics.ts";
import {
  formatHostPort,
  OpsServerError,
  parseListenAddr,
  type Readiness,
  startOpsServer,
} from "../../lib/observe/ops_server.ts";

async function get(addr: string, path: string, method = "GET") {
  const res = await fetch(`http://${addr}${path}`, { method });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

async function promtoolPath(): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("promtool", { args: ["--version"], stdout: "null" })
      .output();
    return out.success ? "promtool" : undefined;
  } catch {
    return undefined;
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
  assert.equal(formatHostPort("::1", 80), "[::1]:80");
  assert.equal(formatHostPort("127.0.0.1", 80), "127.0.0.1:80");
});

Deno.test("ops server serves metrics, healthz and readyz and logs its address", async () => {
  const lines: string[] = [];
  await configureLogging({ level: "info", write: (l) => lines.push(l) });
  const metrics = new Metrics();
  metrics.connectionStarted("listener", "10.0.0.5:22");
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

const hasPromtool = await promtoolPath() !== undefined;
Deno.test({
  name: "ops server /metrics passes promtool check metrics" +
    (hasPromtool ? "" : " (ignored: promtool not found; Debian package `prometheus`)"),
  ignore: !hasPromtool,
  async fn() {
    const metrics = new Metrics({ version: "v0.0.0-test" });
    const h = metrics.connectionStarted("sender", 'odd "target"\\\n:1');
    h.end({ status: "error", bytesToRelay: 3, bytesFromRelay: 4 });
    metrics.connectionError("sender", "relay_failed");
    metrics.dialDuration("sender", 1.5);
    metrics.tokenFetch("entra", "ok", 0.2);
    metrics.setControlConnected(true);
    const srv = startOpsServer({ addr: "127.0.0.1:0", metrics });
    try {
      const { body } = await get(srv.addr, "/metrics");
      const child = new Deno.Command("promtool", {
        args: ["check", "metrics"],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(body));
      await writer.close();
      const out = await child.output();
      const report = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      assert.ok(out.success, report);
      assert.equal(report.trim(), "", "promtool lint findings");
    } finally {
      await srv.close();
    }
  },
});
