/**
 * Metrics and health, in process: the local relay, a listener and a port-forward, each side with
 * its own `Metrics`, ops server and readiness exactly as the CLI wires them (cmd/ops.ts), scraped
 * over HTTP after real traffic.
 */
import assert from "node:assert/strict";
import { ListenerReadiness, SenderReadiness } from "../../cmd/readiness.ts";
import { runListener } from "../../lib/listener/service.ts";
import { configureLogging, getLogger, resetLogging } from "../../lib/observe/log.ts";
import { Metrics } from "../../lib/observe/metrics.ts";
import { type OpsServer, type Readiness, startOpsServer } from "../../lib/observe/ops_server.ts";
import { parseRelayEndpoint } from "../../lib/relay/endpoint.ts";
import { SasTokenProvider, timedTokenProvider, type TokenProvider } from "../../lib/relay/token.ts";
import type { SenderRelayConfig } from "../../lib/sender/open_tunnel.ts";
import { type Allowlist, parseAllowlist } from "../../lib/tunnel/allowlist.ts";
import { metricsObserver } from "../../lib/tunnel/metrics_observer.ts";
import { combineObservers } from "../../lib/tunnel/observer.ts";
import {
  assertPromtoolClean,
  ObserverEvents,
  sample,
  samples,
  scrape,
} from "../helpers/metrics.ts";
import { echoOnce, readAll } from "../helpers/servers.ts";
import {
  echo,
  type LocalRelay,
  startLocalRelay,
  startPortForward,
  startTarget,
} from "../helpers/tunnel_stack.ts";

/** A value that changes once and can be awaited (the control channel's up/down). */
class Flag {
  #value = false;
  #waiters = new Set<() => void>();
  set(v: boolean) {
    this.#value = v;
    for (const w of [...this.#waiters]) w();
  }
  waitFor(v: boolean, deadlineMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.#value !== v) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`control channel not ${v ? "up" : "down"} within ${deadlineMs} ms`));
      }, deadlineMs);
      this.#waiters.add(check);
      check();
    });
  }
}

/** One side's `Metrics`, its ops server on 127.0.0.1:0 answering `ready`, and event counts. */
function opsSide(ready: { check(): Readiness }, side: string) {
  const metrics = new Metrics();
  const ops = startOpsServer({
    addr: "127.0.0.1:0",
    metrics,
    readiness: () => ready.check(),
    logger: getLogger({ side }),
  });
  return { metrics, events: new ObserverEvents(), ops };
}

/** A listener wired like `relay-listener --metrics-addr 127.0.0.1:0`. */
function startListenerSide({ endpoint, relay }: LocalRelay, allowlist: Allowlist | null) {
  const ready = new ListenerReadiness();
  const { metrics, events, ops } = opsSide(ready, "listener-ops");
  const connected = new Flag();
  const ac = new AbortController();
  let running: Promise<void> | undefined;
  return {
    metrics,
    ops,
    events,
    connected,
    start() {
      running = runListener({
        endpoint,
        entity: relay.entity,
        tokens: timedTokenProvider(relay.tokens, metrics),
        allowlist,
        signal: ac.signal,
        logger: getLogger({ side: "listener" }),
        observer: combineObservers(metricsObserver(metrics), events.observer),
        onConnectedChange: (up) => {
          ready.set(up);
          metrics.setControlConnected(up);
          connected.set(up);
        },
        handler: { pingIntervalMs: 0 },
        controlChannel: { reconnectBaseMs: 50 },
      });
      return connected.waitFor(true);
    },
    async stop() {
      ac.abort(new DOMException("shutdown requested", "AbortError"));
      await running;
      await ops.close();
    },
  };
}

/** A port-forward wired like `relay-sender port-forward --metrics-addr 127.0.0.1:0`. */
async function startSenderSide(relay: SenderRelayConfig, target: string) {
  const ready = new SenderReadiness();
  const { metrics, events, ops } = opsSide(ready, "sender-ops");
  const fwd = await startPortForward(
    { ...relay, tokens: timedTokenProvider(relay.tokens, metrics) },
    target,
    {
      observer: combineObservers(metricsObserver(metrics), ready.observer, events.observer),
      onListening: () => ready.bound(),
    },
  );
  return {
    metrics,
    ops,
    events,
    port: fwd.port,
    async stop() {
      await fwd.stop();
      await ops.close();
    },
  };
}

/**
 * The local relay, an echo target and a listener side (not started yet), logging at debug level
 * into the void; `startSender` adds a port-forward side to the target. Disposing stops them all.
 */
async function world(allowlist: Allowlist | null = null) {
  await configureLogging({ level: "debug", write: () => {} });
  const local = await startLocalRelay();
  const target = startTarget(echo);
  const listener = startListenerSide(local, allowlist);
  let sender: Awaited<ReturnType<typeof startSenderSide>> | undefined;
  return {
    ...local,
    target,
    listener,
    async startSender(relay: SenderRelayConfig = local.relay) {
      sender = await startSenderSide(relay, target.addr);
      return sender;
    },
    async [Symbol.asyncDispose]() {
      await sender?.stop();
      await listener.stop();
      await local.server.close();
      await target.close();
      await resetLogging();
    },
  };
}

async function metricsText(ops: OpsServer): Promise<string> {
  const res = await scrape(ops.addr, "/metrics");
  assert.equal(res.status, 200);
  assert.equal(res.contentType, "text/plain; version=0.0.4; charset=utf-8");
  return res.body;
}

Deno.test("metrics: 3 port-forward round trips are counted on the sender and the listener", async () => {
  await using w = await world();
  const { listener, target } = w;
  const before = await scrape(listener.ops.addr, "/readyz");
  assert.deepEqual([before.status, before.body], [
    503,
    "not ready: control channel not connected\n",
  ]);
  assert.equal((await scrape(listener.ops.addr, "/healthz")).status, 200);
  await listener.start();
  const up = await scrape(listener.ops.addr, "/readyz");
  assert.deepEqual([up.status, up.body], [200, "ready\n"]);

  const sender = await w.startSender();
  assert.equal((await scrape(sender.ops.addr, "/readyz")).status, 200);
  for (let i = 0; i < 3; i++) {
    assert.equal(await echoOnce(sender.port, `ping-${i}`), `ping-${i}`);
  }
  await sender.events.waitFor("connectionEnded", 3);
  await listener.events.waitFor("connectionEnded", 3);

  const t = `target="${target.addr}"`;
  for (
    const [side, role, ops] of [
      ["sender", "sender", sender.ops],
      ["listener", "listener", listener.ops],
    ] as const
  ) {
    const text = await metricsText(ops);
    const r = `role="${role}"`;
    assert.equal(sample(text, `aztunnel_connections_total{${r},status="success",${t}}`), 3, side);
    assert.deepEqual(samples(text, "aztunnel_connections_total"), [
      `aztunnel_connections_total{${r},status="success",${t}} 3`,
    ], side);
    assert.equal(sample(text, `aztunnel_active_connections{${r},${t}}`), 0, side);
    assert.equal(sample(text, `aztunnel_dial_duration_seconds_count{${r}}`), 3, side);
    assert.equal(sample(text, `aztunnel_connection_duration_seconds_count{${r},${t}}`), 3, side);
    assert.equal(sample(text, `aztunnel_bytes_total{direction="to_relay",${r},${t}}`), 18, side);
    assert.equal(
      sample(text, `aztunnel_bytes_total{direction="from_relay",${r},${t}}`),
      18,
      side,
    );
    assert.deepEqual(samples(text, "aztunnel_connection_errors_total"), [], side);
    assert.equal(
      sample(text, "aztunnel_control_channel_connected"),
      side === "listener" ? 1 : 0,
      side,
    );
    // One provider, and the counter agrees with the histogram.
    const total = sample(text, 'aztunnel_token_fetch_total{provider="sas",result="ok"}');
    const count = sample(text, 'aztunnel_token_fetch_seconds_count{provider="sas",result="ok"}');
    assert.ok(total !== undefined && total >= 1, `${side}: token fetches ${total}`);
    assert.equal(count, total, side);
    if (side === "sender") assert.equal(total, 3, "one token per relay dial");
    assert.ok(!text.includes('provider="entra"'), side);
    assert.ok(!text.includes('result="error"'), side);
    assert.ok(sample(text, "process_resident_memory_bytes")! > 0, side);
    await assertPromtoolClean(text, `${side} /metrics`);
  }

  // The relay goes away: the listener is no longer ready and says why.
  await w.server.close();
  await listener.connected.waitFor(false);
  const down = await scrape(listener.ops.addr, "/readyz");
  assert.deepEqual([down.status, down.body], [
    503,
    "not ready: control channel not connected\n",
  ]);
  assert.equal(sample(await metricsText(listener.ops), "aztunnel_control_channel_connected"), 0);
});

Deno.test("metrics: an allowlist rejection is a listener connection error, not a bridge", async () => {
  await using w = await world(parseAllowlist(["127.0.0.1:1"]));
  const { listener } = w;
  await listener.start();
  const sender = await w.startSender();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: sender.port });
  // The sender closes the client once the listener refused.
  assert.equal((await readAll(conn)).length, 0);
  conn.close();
  await listener.events.waitFor("connectionError", 1);
  await sender.events.waitFor("relayDialEnded", 1);

  const lText = await metricsText(listener.ops);
  assert.deepEqual(samples(lText, "aztunnel_connection_errors_total"), [
    'aztunnel_connection_errors_total{reason="allowlist_rejected",role="listener"} 1',
  ]);
  assert.deepEqual(samples(lText, "aztunnel_connections_total"), []);
  assert.deepEqual(samples(lText, "aztunnel_dial_duration_seconds_count"), []);
  await assertPromtoolClean(lText, "listener /metrics");

  // The relay dial itself worked: no sender error, and the sender stays ready.
  const sText = await metricsText(sender.ops);
  assert.deepEqual(samples(sText, "aztunnel_connection_errors_total"), []);
  assert.equal(sample(sText, 'aztunnel_dial_duration_seconds_count{role="sender"}'), 1);
  assert.equal((await scrape(sender.ops.addr, "/readyz")).status, 200);
});

/** `inner`'s tokens, except that the first `failures` calls throw. */
function flakyTokens(inner: TokenProvider, failures: number): TokenProvider {
  let calls = 0;
  return {
    kind: "sas",
    getToken: (uri, signal) =>
      ++calls <= failures
        ? Promise.reject(new Error("token service unavailable"))
        : inner.getToken(uri, signal),
  };
}

Deno.test("metrics: a failed relay dial makes the sender unready until a dial works again", async () => {
  await using w = await world();
  await w.listener.start();
  const sender = await w.startSender({ ...w.relay, tokens: flakyTokens(w.relay.tokens, 1) });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: sender.port });
  assert.equal((await readAll(conn)).length, 0);
  conn.close();
  await sender.events.waitFor("relayDialEnded", 1);

  const failed = await scrape(sender.ops.addr, "/readyz");
  assert.deepEqual([failed.status, failed.body], [
    503,
    "not ready: last relay dial failed: get token: token service unavailable\n",
  ]);
  let text = await metricsText(sender.ops);
  assert.deepEqual(samples(text, "aztunnel_connection_errors_total"), [
    'aztunnel_connection_errors_total{reason="relay_failed",role="sender"} 1',
  ]);
  assert.equal(sample(text, 'aztunnel_token_fetch_total{provider="sas",result="error"}'), 1);
  assert.equal(
    sample(text, 'aztunnel_token_fetch_seconds_count{provider="sas",result="error"}'),
    1,
  );
  assert.equal(sample(text, 'aztunnel_dial_duration_seconds_count{role="sender"}'), 1);

  assert.equal(await echoOnce(sender.port, "again"), "again");
  await sender.events.waitFor("connectionEnded", 1);
  assert.equal((await scrape(sender.ops.addr, "/readyz")).status, 200);
  text = await metricsText(sender.ops);
  assert.equal(sample(text, 'aztunnel_token_fetch_total{provider="sas",result="ok"}'), 1);
  assert.equal(sample(text, 'aztunnel_dial_duration_seconds_count{role="sender"}'), 2);
  await assertPromtoolClean(text, "sender /metrics");
});

Deno.test("metrics: a relay dial that runs out of budget counts as dial_timeout", async () => {
  await configureLogging({ level: "debug", write: () => {} });
  // A relay that takes the upgrade request and never answers: the attempts get no response and
  // are retried until the budget ends.
  const silent = startTarget(async (conn) => {
    const buf = new Uint8Array(4096);
    while (await conn.read(buf) !== null) { /* never answer */ }
  });
  const sender = await startSenderSide({
    endpoint: parseRelayEndpoint(`ws://${silent.addr}`),
    entity: "hc",
    tokens: new SasTokenProvider("metrics-policy", "bWV0cmljcy10ZXN0LWtleQ=="),
    dialBudgetMs: 300,
    retryBaseMs: 50,
  }, "127.0.0.1:9");
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: sender.port });
    assert.equal((await readAll(conn)).length, 0);
    conn.close();
    await sender.events.waitFor("relayDialEnded", 1);
    const text = await metricsText(sender.ops);
    assert.deepEqual(samples(text, "aztunnel_connection_errors_total"), [
      'aztunnel_connection_errors_total{reason="dial_timeout",role="sender"} 1',
    ]);
    const ready = await scrape(sender.ops.addr, "/readyz");
    assert.equal(ready.status, 503);
    assert.match(ready.body, /^not ready: last relay dial failed: relay dial timed out after /);
  } finally {
    await sender.stop();
    await silent.close();
    await resetLogging();
  }
});
