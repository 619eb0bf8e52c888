/**
 * `--metrics-addr` as the harnesses use it: real relay-server, relay-listener and port-forward
 * processes, each serving /metrics, /healthz and /readyz on a port found through the
 * `metrics server listening addr=` log line, scraped after real traffic.
 */
import assert from "node:assert/strict";
import {
  logAttr,
  type Proc,
  startListener,
  startPortForward,
  startRelayServer,
} from "../helpers/proc.ts";
import { assertPromtoolClean, sample, samples, scrape } from "../helpers/metrics.ts";
import { readExactly, roundTrip, startEchoServer, writeAll } from "../helpers/servers.ts";

const METRICS = ["--metrics-addr", "127.0.0.1:0"];

/** The real `host:port` from the `metrics server listening` line. */
async function metricsAddr(proc: Proc): Promise<string> {
  const line = (await proc.waitForLine(/metrics server listening/)).input ?? "";
  const addr = logAttr(line, "addr") ?? "";
  assert.match(addr, /^127\.0\.0\.1:[1-9]\d*$/, line);
  return addr;
}

/** Resolves once `re` matched `n` distinct stderr lines. */
async function waitForLines(proc: Proc, re: RegExp, n: number): Promise<void> {
  let from = 0;
  for (let i = 0; i < n; i++) {
    const line = (await proc.waitForLine(re, 20_000, { from })).input ?? "";
    from = proc.stderrLines.indexOf(line, from) + 1;
  }
}

/** A new connection to 127.0.0.1:`port` after one echo round trip on it. */
async function echoedConn(port: number, text: string): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await roundTrip(conn, text);
  return conn;
}

Deno.test("metrics e2e: relay-server, listener and port-forward after 3 round trips", async () => {
  await using echo = startEchoServer();
  // Global flag before the command.
  await using relay = await startRelayServer({
    globalArgs: ["--log-level", "debug", ...METRICS],
  });
  // Environment fallback, JSON logs.
  const listener = await startListener(relay, {
    globalArgs: ["--log-format", "json", "--log-level", "debug"],
    env: { AZTUNNEL_METRICS_ADDR: "127.0.0.1:0" },
  });
  await using _listener = listener;
  // The flag after the command wins over a broken environment value. No warm legs: each one would
  // be a relay rendezvous of its own, and this test counts one per round trip (the pool's metrics
  // are tested in tests/integration/sender_warm_test.ts).
  await using pf = await startPortForward(relay, echo.addr, {
    args: METRICS,
    env: { AZTUNNEL_METRICS_ADDR: "not-an-address", AZTUNNEL_POOL_MAX: "0" },
  });
  const relayOps = await metricsAddr(relay.proc);
  const listenerOps = await metricsAddr(listener);
  const senderOps = await metricsAddr(pf.proc);

  for (let i = 0; i < 3; i++) (await echoedConn(pf.port, `probe-${i}`)).close();
  await waitForLines(pf.proc, /msg="bridge ended"/, 3);
  await waitForLines(listener, /"msg":"bridge ended"/, 3);

  const t = `target="${echo.addr}"`;
  for (const [role, addr] of [["sender", senderOps], ["listener", listenerOps]] as const) {
    const text = (await scrape(addr, "/metrics")).body;
    const r = `role="${role}"`;
    assert.equal(sample(text, `aztunnel_connections_total{${r},status="success",${t}}`), 3, role);
    assert.equal(sample(text, `aztunnel_active_connections{${r},${t}}`), 0, role);
    assert.equal(sample(text, `aztunnel_dial_duration_seconds_count{${r}}`), 3, role);
    assert.equal(sample(text, `aztunnel_bytes_total{direction="to_relay",${r},${t}}`), 21, role);
    assert.equal(sample(text, `aztunnel_bytes_total{direction="from_relay",${r},${t}}`), 21, role);
    const tokenLines = samples(text, "aztunnel_token_fetch_total");
    assert.equal(tokenLines.length, 1, `${role}: one provider and result: ${tokenLines}`);
    assert.match(tokenLines[0], /^aztunnel_token_fetch_total\{provider="sas",result="ok"\} \d+$/);
    assert.equal(
      sample(text, 'aztunnel_token_fetch_seconds_count{provider="sas",result="ok"}'),
      sample(text, 'aztunnel_token_fetch_total{provider="sas",result="ok"}'),
      role,
    );
    assert.equal(
      sample(text, "aztunnel_control_channel_connected"),
      role === "listener" ? 1 : 0,
      role,
    );
    assert.ok(sample(text, "process_resident_memory_bytes")! > 0, role);
    await assertPromtoolClean(text, `${role} /metrics`);
  }

  const relayText = (await scrape(relayOps, "/metrics")).body;
  assert.equal(sample(relayText, "aztunnel_relay_listeners"), 1);
  assert.equal(sample(relayText, "aztunnel_relay_bridged_connections_total"), 3);
  assert.ok(sample(relayText, 'aztunnel_relay_bytes_total{direction="to_listener"}')! >= 21);
  assert.ok(sample(relayText, 'aztunnel_relay_bytes_total{direction="to_sender"}')! >= 21);
  assert.ok(sample(relayText, "aztunnel_relay_pending_rendezvous") !== undefined);
  await assertPromtoolClean(relayText, "relay-server /metrics");

  for (const addr of [relayOps, listenerOps, senderOps]) {
    assert.deepEqual(
      [(await scrape(addr, "/healthz")).status, (await scrape(addr, "/readyz")).body],
      [200, "ready\n"],
      addr,
    );
    assert.equal((await scrape(addr, "/nope")).status, 404, addr);
  }
});

Deno.test("metrics e2e: SIGTERM closes the ops server while open tunnels drain", async () => {
  await using echo = startEchoServer();
  await using relay = await startRelayServer();
  const listener = await startListener(relay, { args: METRICS });
  await using _listener = listener;
  await using pf = await startPortForward(relay, echo.addr);
  const ops = await metricsAddr(listener);

  const open = await echoedConn(pf.port, "hold");
  try {
    listener.child.kill("SIGTERM");
    // The control channel closes on the signal; by then the ops server is closed too.
    await listener.waitForLine(/msg=control_ended .*reason=context_cancelled/);
    await assert.rejects(fetch(`http://${ops}/healthz`), TypeError);
    // The open tunnel still works during the drain.
    await writeAll(open, new TextEncoder().encode("more"));
    assert.equal(new TextDecoder().decode(await readExactly(open, 4)), "more");
    assert.equal(listener.exitStatus, undefined, "still draining");
  } finally {
    open.close();
  }
  await listener.wait();
});
