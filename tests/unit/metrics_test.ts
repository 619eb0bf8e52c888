import assert from "node:assert/strict";
import {
  DEFAULT_MAX_TARGETS,
  Metrics,
  OVERFLOW_TARGET,
  registerProcessMetrics,
  registerRelayServerMetrics,
  type RelayServerCounts,
} from "../../lib/observe/metrics.ts";
import { escapeLabelValue, formatValue, Registry } from "../../lib/observe/prometheus.ts";

/** A clock the test moves by hand (milliseconds). */
function fakeClock() {
  let t = 1000;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

function bare(opts: ConstructorParameters<typeof Metrics>[0] = {}): Metrics {
  return new Metrics({ processMetrics: false, ...opts });
}

/** The sample lines (no comments) of one metric family. */
function samples(text: string, name: string): string[] {
  return text.split("\n").filter((l) =>
    l.startsWith(name + "{") || l.startsWith(name + " ") || l.startsWith(name + "_")
  );
}

Deno.test("registry: exact exposition bytes for counter, gauge and histogram", () => {
  const r = new Registry();
  const c = r.counter({ name: "t_requests_total", help: "Requests.", labelNames: ["b", "a"] });
  c.inc({ b: "2", a: "z" });
  c.inc({ b: "1", a: "z" }, 2.5);
  const g = r.gauge({ name: "t_up", help: "Up." });
  g.set(undefined, 1);
  const h = r.histogram({
    name: "t_latency_seconds",
    help: "Latency.",
    labelNames: ["op"],
    buckets: [0.1, 1],
  });
  h.observe({ op: "get" }, 0.05);
  h.observe({ op: "get" }, 0.5);
  h.observe({ op: "get" }, 3);
  r.counter({ name: "t_unused_total", help: "Never observed.", labelNames: ["x"] });

  assert.equal(
    r.render(),
    [
      "# HELP t_latency_seconds Latency.",
      "# TYPE t_latency_seconds histogram",
      't_latency_seconds_bucket{op="get",le="0.1"} 1',
      't_latency_seconds_bucket{op="get",le="1"} 2',
      't_latency_seconds_bucket{op="get",le="+Inf"} 3',
      't_latency_seconds_sum{op="get"} 3.55',
      't_latency_seconds_count{op="get"} 3',
      "# HELP t_requests_total Requests.",
      "# TYPE t_requests_total counter",
      't_requests_total{a="z",b="1"} 2.5',
      't_requests_total{a="z",b="2"} 1',
      "# HELP t_up Up.",
      "# TYPE t_up gauge",
      "t_up 1",
      "",
    ].join("\n"),
  );
});

Deno.test("registry: label values and help text are escaped", () => {
  const r = new Registry();
  r.gauge({ name: "t_g", help: 'back\\slash\nnewline "quotes"', labelNames: ["v"] })
    .set({ v: 'a\\b"c\nd' }, 1);
  assert.equal(
    r.render(),
    '# HELP t_g back\\\\slash\\nnewline "quotes"\n# TYPE t_g gauge\nt_g{v="a\\\\b\\"c\\nd"} 1\n',
  );
  assert.equal(escapeLabelValue("plain"), "plain");
});

Deno.test("registry: special values and empty registry", () => {
  assert.equal(formatValue(Infinity), "+Inf");
  assert.equal(formatValue(-Infinity), "-Inf");
  assert.equal(formatValue(NaN), "NaN");
  assert.equal(formatValue(0.25), "0.25");
  assert.equal(formatValue(3600), "3600");
  assert.equal(new Registry().render(), "");
});

Deno.test("registry: callback metrics are read at render time and may be absent", () => {
  const r = new Registry();
  let n = 1;
  r.gauge({ name: "t_cb", help: "Cb.", collect: () => n });
  r.gauge({ name: "t_missing", help: "Missing.", collect: () => undefined });
  r.gauge({
    name: "t_series",
    help: "Series.",
    labelNames: ["k"],
    collect: () => [[{ k: "b" }, 2], [{ k: "a" }, 1]],
  });
  assert.match(r.render(), /^t_cb 1$/m);
  n = 7;
  const text = r.render();
  assert.match(text, /^t_cb 7$/m);
  assert.doesNotMatch(text, /t_missing/);
  assert.deepEqual(samples(text, "t_series"), ['t_series{k="a"} 1', 't_series{k="b"} 2']);
});

Deno.test("registry: rejects invalid definitions and mismatched labels", () => {
  const r = new Registry();
  assert.throws(() => r.counter({ name: "t_count", help: "" }), /must end in _total/);
  assert.throws(() => r.gauge({ name: "9bad", help: "" }), /invalid metric name/);
  assert.throws(() => r.gauge({ name: "t_l", help: "", labelNames: ["__x"] }), /invalid label/);
  assert.throws(
    () => r.histogram({ name: "t_h", help: "", labelNames: ["le"], buckets: [1] }),
    /invalid label/,
  );
  assert.throws(() => r.histogram({ name: "t_h2", help: "", buckets: [2, 1] }), /increasing/);
  const c = r.counter({ name: "t_ok_total", help: "", labelNames: ["a"] });
  assert.throws(() => r.counter({ name: "t_ok_total", help: "" }), /already registered/);
  assert.throws(() => c.inc({ b: "x" } as unknown as { a: string }), /do not match/);
  assert.throws(() => c.inc({ a: "x" }, -1), RangeError);
});

Deno.test("metrics: all nine aztunnel families, control gauge present from the start", () => {
  const m = bare();
  const empty = m.render();
  assert.equal(
    empty,
    "# HELP aztunnel_control_channel_connected 1 while the listener control channel is connected, else 0.\n" +
      "# TYPE aztunnel_control_channel_connected gauge\n" +
      "aztunnel_control_channel_connected 0\n",
  );
  m.connectionError("sender", "relay_failed");
  m.dialDuration("sender", 0.2);
  m.tokenFetch("sas", "ok", 0.01);
  m.setControlConnected(true);
  m.bridgeStarted("sender", "h:22");
  m.bridgeEnded("sender", "h:22", { status: "success", bytesToRelay: 1, bytesFromRelay: 2 }, 0.5);
  const text = m.render();
  const types = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((x) => `${x[1]} ${x[2]}`);
  assert.deepEqual(types, [
    "aztunnel_active_connections gauge",
    "aztunnel_bytes_total counter",
    "aztunnel_connection_duration_seconds histogram",
    "aztunnel_connection_errors_total counter",
    "aztunnel_connections_total counter",
    "aztunnel_control_channel_connected gauge",
    "aztunnel_dial_duration_seconds histogram",
    "aztunnel_token_fetch_seconds histogram",
    "aztunnel_token_fetch_total counter",
  ]);
  assert.match(text, /^aztunnel_control_channel_connected 1$/m);
  m.setControlConnected(false);
  assert.match(m.render(), /^aztunnel_control_channel_connected 0$/m);
});

Deno.test("metrics: connection lifecycle records active, total, bytes and duration", () => {
  const m = bare();
  assert.equal(m.bridgeStarted("listener", "10.0.0.1:22"), "10.0.0.1:22");
  assert.deepEqual(samples(m.render(), "aztunnel_active_connections"), [
    'aztunnel_active_connections{role="listener",target="10.0.0.1:22"} 1',
  ]);
  m.bridgeEnded(
    "listener",
    "10.0.0.1:22",
    { status: "error", bytesToRelay: 1024, bytesFromRelay: 2048 },
    7.5,
  );
  const text = m.render();
  const t = 'role="listener",target="10.0.0.1:22"';
  assert.deepEqual(samples(text, "aztunnel_active_connections"), [
    `aztunnel_active_connections{${t}} 0`,
  ]);
  assert.deepEqual(samples(text, "aztunnel_connections_total"), [
    `aztunnel_connections_total{role="listener",status="error",target="10.0.0.1:22"} 1`,
  ]);
  assert.deepEqual(samples(text, "aztunnel_bytes_total"), [
    `aztunnel_bytes_total{direction="from_relay",${t}} 2048`,
    `aztunnel_bytes_total{direction="to_relay",${t}} 1024`,
  ]);
  assert.deepEqual(samples(text, "aztunnel_connection_duration_seconds"), [
    `aztunnel_connection_duration_seconds_bucket{${t},le="1"} 0`,
    `aztunnel_connection_duration_seconds_bucket{${t},le="5"} 0`,
    `aztunnel_connection_duration_seconds_bucket{${t},le="15"} 1`,
    `aztunnel_connection_duration_seconds_bucket{${t},le="30"} 1`,
    `aztunnel_connection_duration_seconds_bucket{${t},le="60"} 1`,
    `aztunnel_connection_duration_seconds_bucket{${t},le="120"} 1`,
    `aztunnel_connection_duration_seconds_bucket{${t},le="300"} 1`,
    `aztunnel_connection_duration_seconds_bucket{${t},le="600"} 1`,
    `aztunnel_connection_duration_seconds_bucket{${t},le="1800"} 1`,
    `aztunnel_connection_duration_seconds_bucket{${t},le="3600"} 1`,
    `aztunnel_connection_duration_seconds_bucket{${t},le="+Inf"} 1`,
    `aztunnel_connection_duration_seconds_sum{${t}} 7.5`,
    `aztunnel_connection_duration_seconds_count{${t}} 1`,
  ]);
});

Deno.test("metrics: dial and token buckets match the Go tool", () => {
  const m = bare();
  m.dialDuration("sender", 0.003);
  m.tokenFetch("entra", "error", 45);
  const text = m.render();
  const les = (name: string) =>
    samples(text, name).flatMap((l) => /\ble="([^"]+)"/.exec(l)?.[1] ?? []).join(",");
  assert.equal(
    les("aztunnel_dial_duration_seconds"),
    "0.001,0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10,30,+Inf",
  );
  assert.equal(
    les("aztunnel_token_fetch_seconds"),
    "0.001,0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10,15,30,60,+Inf",
  );
  assert.match(text, /^aztunnel_dial_duration_seconds_bucket\{role="sender",le="0.005"\} 1$/m);
  assert.match(
    text,
    /^aztunnel_token_fetch_seconds_bucket\{provider="entra",result="error",le="30"\} 0$/m,
  );
  assert.match(
    text,
    /^aztunnel_token_fetch_seconds_bucket\{provider="entra",result="error",le="60"\} 1$/m,
  );
  assert.match(text, /^aztunnel_token_fetch_total\{provider="entra",result="error"\} 1$/m);
});

Deno.test("metrics: timeTokenFetch records ok and error and passes results through", async () => {
  const clock = fakeClock();
  const m = bare({ now: clock.now });
  const v = await m.timeTokenFetch("sas", () => {
    clock.advance(20);
    return Promise.resolve("tok");
  });
  assert.equal(v, "tok");
  const boom = new Error("boom");
  await assert.rejects(m.timeTokenFetch("sas", () => Promise.reject(boom)), (e) => e === boom);
  const text = m.render();
  assert.match(text, /^aztunnel_token_fetch_total\{provider="sas",result="ok"\} 1$/m);
  assert.match(text, /^aztunnel_token_fetch_total\{provider="sas",result="error"\} 1$/m);
  assert.match(text, /^aztunnel_token_fetch_seconds_sum\{provider="sas",result="ok"\} 0.02$/m);
  assert.match(text, /^aztunnel_token_fetch_seconds_count\{provider="sas",result="error"\} 1$/m);
});

Deno.test("metrics: connection error reasons", () => {
  const m = bare();
  m.connectionError("listener", "allowlist_rejected");
  m.connectionError("listener", "allowlist_rejected");
  m.connectionError("listener", "dns_not_found");
  assert.deepEqual(samples(m.render(), "aztunnel_connection_errors_total"), [
    'aztunnel_connection_errors_total{reason="allowlist_rejected",role="listener"} 2',
    'aztunnel_connection_errors_total{reason="dns_not_found",role="listener"} 1',
  ]);
});

Deno.test("metrics: target cardinality guard", () => {
  assert.equal(bare().maxTargets, DEFAULT_MAX_TARGETS);
  const m = bare({ maxTargets: 2 });
  assert.equal(m.targetLabel("a:1"), "a:1");
  assert.equal(m.targetLabel("b:1"), "b:1");
  assert.equal(m.targetLabel("c:1"), OVERFLOW_TARGET);
  assert.equal(m.targetLabel("a:1"), "a:1", "known targets keep their label");
  assert.equal(m.targetLabel("d:1"), OVERFLOW_TARGET);
  assert.equal(m.bridgeStarted("listener", "e:1"), OVERFLOW_TARGET);
  m.bridgeEnded("listener", "e:1", { status: "success", bytesToRelay: 0, bytesFromRelay: 0 }, 0);
  assert.match(
    m.render(),
    /^aztunnel_connections_total\{role="listener",status="success",target="__other__"\} 1$/m,
  );

  const unlimited = bare({ maxTargets: 0 });
  for (let i = 0; i < 1000; i++) assert.equal(unlimited.targetLabel(`t${i}`), `t${i}`);

  assert.throws(() => bare({ maxTargets: -1 }), {
    name: "RangeError",
    message: "--metrics-max-targets must be >= 0, got -1",
  });
});

Deno.test("metrics: hook-style bridgeStarted/bridgeEnded keep labels under the guard", () => {
  const m = bare({ maxTargets: 1 });
  assert.equal(m.bridgeStarted("sender", "a:1"), "a:1");
  assert.equal(m.bridgeStarted("sender", "b:1"), OVERFLOW_TARGET);
  assert.equal(m.bridgeStarted("sender", "a:1"), "a:1");
  const end = { status: "success", bytesToRelay: 3, bytesFromRelay: 4 } as const;
  m.bridgeEnded("sender", "b:1", end, 2);
  m.bridgeEnded("sender", "a:1", end, 0.5);
  const text = m.render();
  assert.deepEqual(samples(text, "aztunnel_active_connections"), [
    'aztunnel_active_connections{role="sender",target="__other__"} 0',
    'aztunnel_active_connections{role="sender",target="a:1"} 1',
  ]);
  assert.match(
    text,
    /^aztunnel_connection_duration_seconds_sum\{role="sender",target="__other__"\} 2$/m,
  );
  assert.match(
    text,
    /^aztunnel_bytes_total\{direction="to_relay",role="sender",target="a:1"\} 3$/m,
  );
});

Deno.test("metrics: concurrent connections against the guard keep counts exact", async () => {
  const m = bare({ maxTargets: 3 });
  await Promise.all(Array.from({ length: 50 }, async (_, i) => {
    const target = `host${i % 10}:80`;
    m.bridgeStarted("sender", target);
    await Promise.resolve();
    m.bridgeEnded("sender", target, { status: "success", bytesToRelay: 1, bytesFromRelay: 1 }, 0);
  }));
  const text = m.render();
  const totals = samples(text, "aztunnel_connections_total");
  assert.equal(totals.length, 4);
  const sum = totals.reduce((s, l) => s + Number(l.split(" ").at(-1)), 0);
  assert.equal(sum, 50);
  assert.match(text, /target="__other__"\} 35$/m);
  assert.ok(samples(text, "aztunnel_active_connections").every((l) => l.endsWith(" 0")));
});

Deno.test("metrics: build info", () => {
  assert.match(
    bare({ version: "v1.2.3" }).render(),
    /^aztunnel_build_info\{version="v1.2.3"\} 1$/m,
  );
});

Deno.test("metrics: process metrics are present and plausible", () => {
  const r = new Registry();
  registerProcessMetrics(r);
  const text = r.render();
  const value = (name: string) => {
    const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
    assert.ok(m, `${name} missing`);
    return Number(m[1]);
  };
  assert.ok(value("process_resident_memory_bytes") > 1e6);
  assert.ok(value("process_cpu_seconds_total") > 0);
  const start = value("process_start_time_seconds");
  assert.ok(start <= Date.now() / 1000 && start > Date.now() / 1000 - 3600);
  assert.ok(value("deno_heap_used_bytes") > 0);
  // Tests run with -A, the only way Deno 2.9 lets a program read /proc/self.
  if (Deno.build.os === "linux") assert.ok(value("process_open_fds") > 2);
});

Deno.test("metrics: relay-server series are read at every scrape", () => {
  const r = new Registry();
  const counts: RelayServerCounts = {
    listeners: 0,
    pendingRendezvous: 1,
    bridgedConnections: 2,
    bridgedTotal: 7,
    bytesToListener: 10,
    bytesToSender: 5,
  };
  registerRelayServerMetrics(r, () => counts);
  counts.listeners = 3;
  counts.bytesToSender = 10;
  assert.equal(
    r.render(),
    [
      "# HELP aztunnel_relay_bridged_connections Sender/listener pairs bridged now.",
      "# TYPE aztunnel_relay_bridged_connections gauge",
      "aztunnel_relay_bridged_connections 2",
      "# HELP aztunnel_relay_bridged_connections_total Sender/listener pairs bridged.",
      "# TYPE aztunnel_relay_bridged_connections_total counter",
      "aztunnel_relay_bridged_connections_total 7",
      "# HELP aztunnel_relay_bytes_total Bytes forwarded between senders and listeners.",
      "# TYPE aztunnel_relay_bytes_total counter",
      'aztunnel_relay_bytes_total{direction="to_listener"} 10',
      'aztunnel_relay_bytes_total{direction="to_sender"} 10',
      "# HELP aztunnel_relay_listeners Listener control channels currently registered.",
      "# TYPE aztunnel_relay_listeners gauge",
      "aztunnel_relay_listeners 3",
      "# HELP aztunnel_relay_pending_rendezvous Senders waiting for a listener to accept.",
      "# TYPE aztunnel_relay_pending_rendezvous gauge",
      "aztunnel_relay_pending_rendezvous 1",
      "",
    ].join("\n"),
  );
});

Deno.test("metrics: pool series appear only once a pool uses them", () => {
  const m = bare();
  assert.doesNotMatch(m.render(), /aztunnel_pool|aztunnel_early_data/);
  const pool = m.pool();
  assert.equal(m.pool(), pool, "one set per process");
  assert.deepEqual(
    [...m.render().matchAll(/^# TYPE (aztunnel_(?:pool|early)\S*) (\S+)$/gm)].map((x) =>
      `${x[1]} ${x[2]}`
    ),
    [
      "aztunnel_early_data_bytes_total counter",
      "aztunnel_pool_hits_total counter",
      "aztunnel_pool_legs gauge",
      "aztunnel_pool_misses_total counter",
    ],
  );
  pool.legs(3);
  pool.legs(-1);
  pool.hit();
  pool.hit();
  pool.miss();
  pool.earlyData(100);
  pool.earlyData(28);
  const text = m.render();
  assert.match(text, /^aztunnel_pool_legs 2$/m);
  assert.match(text, /^aztunnel_pool_hits_total 2$/m);
  assert.match(text, /^aztunnel_pool_misses_total 1$/m);
  assert.match(text, /^aztunnel_early_data_bytes_total 128$/m);
});

Deno.test("metrics: entryNames puts name on every per-tunnel series and the listener gauges", () => {
  const m = bare({ entryNames: true, now: fakeClock().now });
  m.bridgeStarted("listener", "db:5432", "edge");
  m.bridgeStarted("sender", "db:5432", "db");
  m.bridgeEnded(
    "sender",
    "db:5432",
    {
      status: "success",
      bytesToRelay: 3,
      bytesFromRelay: 4,
    },
    2,
    "db",
  );
  m.connectionError("listener", "allowlist_rejected", "edge");
  m.dialDuration("sender", 0.02, "db");
  m.setControlConnected(true, "edge");
  m.setWarmLegsHeld(2, "edge");
  const text = m.render();
  assert.deepEqual(samples(text, "aztunnel_active_connections"), [
    'aztunnel_active_connections{name="db",role="sender",target="db:5432"} 0',
    'aztunnel_active_connections{name="edge",role="listener",target="db:5432"} 1',
  ]);
  assert.deepEqual(samples(text, "aztunnel_bytes_total"), [
    'aztunnel_bytes_total{direction="from_relay",name="db",role="sender",target="db:5432"} 4',
    'aztunnel_bytes_total{direction="to_relay",name="db",role="sender",target="db:5432"} 3',
  ]);
  assert.deepEqual(samples(text, "aztunnel_connections_total"), [
    'aztunnel_connections_total{name="db",role="sender",status="success",target="db:5432"} 1',
  ]);
  assert.deepEqual(samples(text, "aztunnel_connection_errors_total"), [
    'aztunnel_connection_errors_total{name="edge",reason="allowlist_rejected",role="listener"} 1',
  ]);
  assert.deepEqual(samples(text, "aztunnel_control_channel_connected"), [
    'aztunnel_control_channel_connected{name="edge"} 1',
  ]);
  assert.deepEqual(samples(text, "aztunnel_warm_legs_held"), [
    'aztunnel_warm_legs_held{name="edge"} 2',
  ]);
  for (const family of ["aztunnel_connection_duration_seconds", "aztunnel_dial_duration_seconds"]) {
    const lines = samples(text, family);
    assert.ok(lines.length > 0);
    for (const l of lines) assert.match(l, /\{name="db",/, l);
  }
  // The token families are per process, not per entry.
  assert.doesNotMatch(text, /aztunnel_token_fetch_total\{[^}]*name=/);
});

Deno.test("metrics: without entryNames no series carries name, control gauge stays unlabelled", () => {
  const m = bare();
  m.bridgeStarted("listener", "db:5432", "edge");
  m.setControlConnected(true, "edge");
  const text = m.render();
  assert.doesNotMatch(text, /name="/);
  assert.deepEqual(samples(text, "aztunnel_control_channel_connected"), [
    "aztunnel_control_channel_connected 1",
  ]);
});
