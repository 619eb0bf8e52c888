/**
 * Arc metrics and readiness, in process: `arc port-forward` (role sender, target `<rid>:<port>`)
 * against the fake ARM, the local relay and the fake Arc agent, wired as cmd/ops.ts wires it.
 */
import assert from "node:assert/strict";
import { SenderReadiness } from "../../cmd/readiness.ts";
import { parseArcRelayUrl } from "../../lib/arc/config.ts";
import { runArcPortForward } from "../../lib/arc/port_forward.ts";
import type { ArcSessionOptions } from "../../lib/arc/session.ts";
import { configureLogging, resetLogging } from "../../lib/observe/log.ts";
import { Metrics } from "../../lib/observe/metrics.ts";
import { startOpsServer } from "../../lib/observe/ops_server.ts";
import { metricsObserver } from "../../lib/tunnel/metrics_observer.ts";
import { combineObservers } from "../../lib/tunnel/observer.ts";
import { startArcStack } from "../helpers/arc_stack.ts";
import type { FakeArmOptions } from "../helpers/fake_arm.ts";
import {
  assertPromtoolClean,
  ObserverEvents,
  sample,
  samples,
  scrape,
} from "../helpers/metrics.ts";
import { echoOnce, readAll, startEchoServer } from "../helpers/servers.ts";

const RID =
  "/subscriptions/00000000-0000-0000-0000-000000000003/resourceGroups/rg/providers/Microsoft.HybridCompute/machines/metrics-vm";
const HC = "microsoft.hybridcompute/machines/0f0e0d0c-0000-4000-8000-000000000003";

async function arcWorld(arm: Partial<FakeArmOptions> = {}) {
  await configureLogging({ level: "debug", write: () => {} });
  const stack = await startArcStack({
    resourceId: RID,
    hybridConnectionName: HC,
    keyName: "arc-agent",
    arm,
  });
  const echo = startEchoServer();
  return {
    arm: stack.arm,
    echo,
    session: (relayUrl = stack.relayUrl) =>
      stack.session(echo.port, { relayBase: parseArcRelayUrl(relayUrl) }),
    async [Symbol.asyncDispose]() {
      await stack[Symbol.asyncDispose]();
      await echo.close();
      await resetLogging();
    },
  };
}

/** `arc port-forward --metrics-addr 127.0.0.1:0` in process. */
async function startArcForward(session: ArcSessionOptions) {
  const metrics = new Metrics();
  const ready = new SenderReadiness();
  const events = new ObserverEvents();
  const ops = startOpsServer({ addr: "127.0.0.1:0", metrics, readiness: () => ready.check() });
  const stop = new AbortController();
  const listening = Promise.withResolvers<number>();
  const running = runArcPortForward({
    ...session,
    bind: { hostname: "127.0.0.1", port: 0 },
    keepAlive: true,
    signal: stop.signal,
    observer: combineObservers(metricsObserver(metrics), ready.observer, events.observer),
    onListening: (addr) => {
      ready.bound();
      listening.resolve(addr.port);
    },
  });
  running.catch(listening.reject);
  const port = await listening.promise;
  return {
    port,
    events,
    addr: ops.addr,
    metrics: async () => (await scrape(ops.addr, "/metrics")).body,
    async [Symbol.asyncDispose]() {
      stop.abort();
      await running.catch(() => {});
      await ops.close();
    },
  };
}

/** A connection the forwarder drops before bridging: it reads EOF (or a reset) at once. */
async function dropped(port: number): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await readAll(conn).catch(() => new Uint8Array());
  } finally {
    conn.close();
  }
}

Deno.test("metrics: arc port-forward counts bridges under <rid>:<port>, without token series", async () => {
  await using w = await arcWorld();
  await using fwd = await startArcForward(w.session());
  assert.equal(await echoOnce(fwd.port, "one"), "one");
  assert.equal(await echoOnce(fwd.port, "two"), "two");
  await fwd.events.waitFor("connectionEnded", 2);
  const text = await fwd.metrics();
  const labels = `role="sender",target="${RID}:${w.echo.port}"`;
  assert.deepEqual(samples(text, "aztunnel_connections_total"), [
    `aztunnel_connections_total{role="sender",status="success",target="${RID}:${w.echo.port}"} 2`,
  ]);
  assert.equal(sample(text, `aztunnel_active_connections{${labels}}`), 0);
  assert.equal(sample(text, `aztunnel_bytes_total{direction="to_relay",${labels}}`), 6);
  assert.equal(sample(text, `aztunnel_bytes_total{direction="from_relay",${labels}}`), 6);
  assert.equal(sample(text, 'aztunnel_dial_duration_seconds_count{role="sender"}'), 2);
  assert.deepEqual(samples(text, "aztunnel_connection_errors_total"), []);
  assert.deepEqual(samples(text, "aztunnel_token_fetch"), [], "not recorded for arc");
  assert.equal(sample(text, "aztunnel_control_channel_connected"), 0);
  assert.equal((await scrape(fwd.addr, "/readyz")).status, 200);
  await assertPromtoolClean(text, "arc port-forward /metrics");
});

Deno.test("metrics: an arc credential failure is auth_failed and unready until it works again", async () => {
  // Credentials shorter-lived than the refresh margin: every connection asks ARM.
  await using w = await arcWorld({ credentialLifetimeSec: 120 });
  await using fwd = await startArcForward(w.session());
  w.arm.setFailure("list", { status: 400, code: "BadRequest", message: "try later" });
  await dropped(fwd.port);
  await fwd.events.waitFor("relayDialEnded", 1);
  const unready = await scrape(fwd.addr, "/readyz");
  assert.equal(unready.status, 503);
  assert.match(unready.body, /^not ready: last relay dial failed: .*HTTP 400.*\n$/);
  assert.deepEqual(samples(await fwd.metrics(), "aztunnel_connection_errors_total"), [
    'aztunnel_connection_errors_total{reason="auth_failed",role="sender"} 1',
  ]);

  w.arm.setFailure("list", undefined);
  assert.equal(await echoOnce(fwd.port, "back"), "back");
  await fwd.events.waitFor("connectionEnded", 1);
  assert.equal((await scrape(fwd.addr, "/readyz")).status, 200);
});

Deno.test("metrics: arc relay dial failures: refused is relay_failed, no answer is dial_timeout", async () => {
  await using w = await arcWorld();
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const refusedUrl = `ws://127.0.0.1:${closed.addr.port}`;
  closed.close();
  {
    await using fwd = await startArcForward(w.session(refusedUrl));
    await dropped(fwd.port);
    await fwd.events.waitFor("relayDialEnded", 1);
    const text = await fwd.metrics();
    assert.deepEqual(samples(text, "aztunnel_connection_errors_total"), [
      'aztunnel_connection_errors_total{reason="relay_failed",role="sender"} 1',
    ]);
    assert.equal(sample(text, 'aztunnel_dial_duration_seconds_count{role="sender"}'), 1);
    const ready = await scrape(fwd.addr, "/readyz");
    assert.equal(ready.status, 503);
    assert.match(ready.body, /^not ready: last relay dial failed: dial arc relay: /);
  }
  // A relay that reads the upgrade request and never answers.
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of silent) held.push(c);
  })();
  try {
    await using fwd = await startArcForward({
      ...w.session(`ws://127.0.0.1:${silent.addr.port}`),
      dialTiming: { attemptTimeoutMs: 200, backoffMs: [20] },
    });
    await dropped(fwd.port);
    await fwd.events.waitFor("relayDialEnded", 1);
    assert.deepEqual(samples(await fwd.metrics(), "aztunnel_connection_errors_total"), [
      'aztunnel_connection_errors_total{reason="dial_timeout",role="sender"} 1',
    ]);
  } finally {
    silent.close();
    await accepting;
    for (const c of held) c.close();
  }
});
