/** The glue between the tunnel code and the metrics: observer adapter, token timing, flags, readiness. */
import assert from "node:assert/strict";
import { parseMetricsFlags, relayServerCounts } from "../../cmd/ops.ts";
import { ListenerReadiness, SenderReadiness } from "../../cmd/readiness.ts";
import { UsageError } from "../../lib/errors.ts";
import { Metrics } from "../../lib/observe/metrics.ts";
import { SasTokenProvider, timedTokenProvider, type TokenProvider } from "../../lib/relay/token.ts";
import type { BridgeResult } from "../../lib/tunnel/bridge_result.ts";
import { metricsObserver } from "../../lib/tunnel/metrics_observer.ts";
import { combineObservers, type TunnelObserver } from "../../lib/tunnel/observer.ts";

function line(text: string, series: string): number | undefined {
  const hit = text.split("\n").find((l) => l.startsWith(series + " "));
  return hit === undefined ? undefined : Number(hit.slice(series.length + 1));
}

const clean: BridgeResult = { cause: "local_close", tcpToWs: 10, wsToTcp: 20 };

Deno.test("metricsObserver: bridges, errors and dials land in the §7 series", () => {
  const m = new Metrics({ processMetrics: false });
  const o = metricsObserver(m);
  o.connectionStarted!("listener", "db:5432");
  o.connectionStarted!("listener", "db:5432");
  assert.equal(
    line(m.render(), 'aztunnel_active_connections{role="listener",target="db:5432"}'),
    2,
  );
  o.connectionEnded!("listener", "db:5432", clean, 1500);
  o.connectionEnded!("listener", "db:5432", { ...clean, error: new Error("reset") }, 500);
  o.connectionError!("listener", "dns_not_found");
  o.dialDuration!("listener", 20);
  const text = m.render();
  const t = 'role="listener",target="db:5432"';
  assert.equal(line(text, `aztunnel_active_connections{${t}}`), 0);
  assert.equal(
    line(text, `aztunnel_connections_total{role="listener",status="success",target="db:5432"}`),
    1,
  );
  assert.equal(
    line(text, `aztunnel_connections_total{role="listener",status="error",target="db:5432"}`),
    1,
  );
  assert.equal(line(text, `aztunnel_bytes_total{direction="to_relay",${t}}`), 20);
  assert.equal(line(text, `aztunnel_bytes_total{direction="from_relay",${t}}`), 40);
  assert.equal(line(text, `aztunnel_connection_duration_seconds_sum{${t}}`), 2);
  assert.equal(
    line(text, `aztunnel_connection_errors_total{reason="dns_not_found",role="listener"}`),
    1,
  );
  assert.equal(line(text, `aztunnel_dial_duration_seconds_bucket{role="listener",le="0.01"}`), 0);
  assert.equal(line(text, `aztunnel_dial_duration_seconds_bucket{role="listener",le="0.025"}`), 1);
});

Deno.test("metricsObserver: an entry's observer labels its series with the entry's name", () => {
  const m = new Metrics({ processMetrics: false, entryNames: true });
  const db = metricsObserver(m, "db");
  const web = metricsObserver(m, "web");
  db.connectionStarted!("sender", "x:1");
  web.connectionStarted!("sender", "x:1");
  web.connectionEnded!("sender", "x:1", clean, 1000);
  web.connectionError!("sender", "relay_failed");
  db.dialDuration!("sender", 5);
  const text = m.render();
  const t = 'role="sender",target="x:1"';
  assert.equal(line(text, `aztunnel_active_connections{name="db",${t}}`), 1);
  assert.equal(line(text, `aztunnel_active_connections{name="web",${t}}`), 0);
  assert.equal(line(text, `aztunnel_bytes_total{direction="to_relay",name="web",${t}}`), 10);
  assert.equal(
    line(text, 'aztunnel_connection_errors_total{name="web",reason="relay_failed",role="sender"}'),
    1,
  );
  assert.equal(line(text, 'aztunnel_dial_duration_seconds_count{name="db",role="sender"}'), 1);
});

Deno.test("combineObservers: forwards every hook to each observer, skips undefined", () => {
  const calls: string[] = [];
  const spy = (name: string): TunnelObserver => ({
    connectionStarted: (role, target) => calls.push(`${name} start ${role} ${target}`),
    connectionEnded: (role) => calls.push(`${name} end ${role}`),
    connectionError: (_role, reason) => calls.push(`${name} error ${reason}`),
    dialDuration: (_role, ms) => calls.push(`${name} dial ${ms}`),
    relayDialEnded: (err) => calls.push(`${name} relay ${err === undefined ? "ok" : "failed"}`),
  });
  const a = spy("a");
  assert.equal(combineObservers(undefined, a, undefined), a);
  assert.equal(combineObservers(undefined), undefined);
  const both = combineObservers(a, { relayDialEnded: () => calls.push("b relay") })!;
  both.connectionStarted!("sender", "x:1");
  both.connectionEnded!("sender", "x:1", clean, 1);
  both.connectionError!("sender", "relay_failed");
  both.dialDuration!("sender", 7);
  both.relayDialEnded!(new Error("no"));
  assert.deepEqual(calls, [
    "a start sender x:1",
    "a end sender",
    "a error relay_failed",
    "a dial 7",
    "a relay failed",
    "b relay",
  ]);
});

Deno.test("timedTokenProvider: every call is timed under the inner kind, errors pass through", async () => {
  const m = new Metrics({ processMetrics: false });
  const sas = timedTokenProvider(new SasTokenProvider("k", "v"), m);
  assert.equal(sas.kind, "sas");
  await sas.getToken("https://ns/hc");
  await sas.getToken("https://ns/hc");
  const failing: TokenProvider = {
    kind: "entra",
    getToken: () => Promise.reject(new Error("no identity")),
  };
  await assert.rejects(timedTokenProvider(failing, m).getToken("https://ns/hc"), /no identity/);
  const text = m.render();
  assert.equal(line(text, 'aztunnel_token_fetch_total{provider="sas",result="ok"}'), 2);
  assert.equal(line(text, 'aztunnel_token_fetch_seconds_count{provider="sas",result="ok"}'), 2);
  assert.equal(line(text, 'aztunnel_token_fetch_total{provider="entra",result="error"}'), 1);
});

Deno.test("parseMetricsFlags: off without an address; max targets checked only when on", () => {
  assert.equal(parseMetricsFlags({}), undefined);
  assert.equal(parseMetricsFlags({ metricsAddr: "  ", metricsMaxTargets: "0" }), undefined);
  assert.throws(
    () => parseMetricsFlags({ metricsAddr: "  ", metricsMaxTargets: "-1" }),
    (e: Error) =>
      e instanceof UsageError && e.message === "--metrics-max-targets must be >= 0, got -1",
  );
  assert.deepEqual(parseMetricsFlags({ metricsAddr: ":9090", metricsMaxTargets: "500" }), {
    addr: ":9090",
    maxTargets: 500,
  });
  assert.deepEqual(parseMetricsFlags({ metricsAddr: "127.0.0.1:0", metricsMaxTargets: "0" }), {
    addr: "127.0.0.1:0",
    maxTargets: 0,
  });
  assert.throws(
    () => parseMetricsFlags({ metricsAddr: "127.0.0.1:0", metricsMaxTargets: "-3" }),
    (e: Error) =>
      e instanceof UsageError && e.message === "--metrics-max-targets must be >= 0, got -3",
  );
  assert.throws(
    () => parseMetricsFlags({ metricsMaxTargets: "1e3" }),
    (e: Error) =>
      e instanceof UsageError &&
      e.message === 'invalid --metrics-max-targets "1e3": expected an integer',
  );
});

Deno.test("parseMetricsFlags: a malformed --metrics-addr is a usage error naming the value", () => {
  for (const bad of ["bogus", "127.0.0.1:99999", "9090", "host:", "[::1]", " :x "]) {
    assert.throws(
      () => parseMetricsFlags({ metricsAddr: bad }),
      (e: Error) =>
        e instanceof UsageError &&
        e.message === `invalid --metrics-addr "${bad}": expected host:port`,
      bad,
    );
  }
  assert.deepEqual(parseMetricsFlags({ metricsAddr: "[::1]:0" }), {
    addr: "[::1]:0",
    maxTargets: 500,
  });
});

Deno.test("readiness: listener follows the control channel; sender needs a bound socket and a working dial", () => {
  const l = new ListenerReadiness();
  assert.deepEqual(l.check(), { ready: false, reason: "control channel not connected" });
  l.set(true);
  assert.deepEqual(l.check(), { ready: true });
  l.set(false);
  assert.equal(l.check().ready, false);

  const s = new SenderReadiness();
  assert.deepEqual(s.check(), { ready: false, reason: "local listener not bound" });
  s.bound();
  assert.deepEqual(s.check(), { ready: true });
  s.observer.relayDialEnded!(new Error("dial wss://ns/$hc/x?sb-hc-token=SECRET&x=1: refused"));
  assert.deepEqual(s.check(), {
    ready: false,
    reason: "last relay dial failed: dial wss://ns/$hc/x?sb-hc-token=REDACTED&x=1: refused",
  });
  s.observer.relayDialEnded!();
  assert.deepEqual(s.check(), { ready: true });
});

Deno.test("relayServerCounts: listeners summed over hycos, bytes by direction", () => {
  assert.deepEqual(
    relayServerCounts({
      listeners: { a: 2, b: 1 },
      pendingRendezvous: 4,
      bridgedConnections: 1,
      bridgedTotal: 9,
      bytesSenderToListener: 100,
      bytesListenerToSender: 50,
    }),
    {
      listeners: 3,
      pendingRendezvous: 4,
      bridgedConnections: 1,
      bridgedTotal: 9,
      bytesToListener: 100,
      bytesToSender: 50,
    },
  );
});
