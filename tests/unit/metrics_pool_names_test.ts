/**
 * The warm-pool series per `up` entry (`name` label), the mux-stream counter, and an entry's series
 * leaving the page (`forgetEntry`, `Registry.dropSeries`); without `entryNames` the pool page is
 * byte for byte what a plain sender has always exported.
 */
import assert from "node:assert/strict";
import { Metrics } from "../../lib/observe/metrics.ts";
import { Registry } from "../../lib/observe/prometheus.ts";

function bare(entryNames = false): Metrics {
  return new Metrics({ processMetrics: false, entryNames });
}

const POOL_HELP = [
  "# HELP aztunnel_early_data_bytes_total Client bytes sent ahead of the listener's answer on accepted tunnels.",
  "# TYPE aztunnel_early_data_bytes_total counter",
];

/** The page with only the pool families (the always-present tunnel families left out). */
function poolPage(m: Metrics): string[] {
  const lines = m.render().split("\n");
  const out: string[] = [];
  let keep = false;
  for (const l of lines) {
    if (l.startsWith("# HELP ")) keep = /^# HELP aztunnel_(pool_|early_data_)/.test(l);
    if (keep && l !== "") out.push(l);
  }
  return out;
}

Deno.test("metrics: a plain sender's pool page is unchanged, mux streams only once counted", () => {
  const m = bare();
  const pool = m.pool();
  assert.equal(m.pool("ignored without entryNames"), pool, "one set per process");
  pool.legs(2);
  pool.hit();
  pool.miss();
  pool.earlyData(7);
  const today = [
    ...POOL_HELP,
    "aztunnel_early_data_bytes_total 7",
    "# HELP aztunnel_pool_hits_total Tunnels opened on a warm leg.",
    "# TYPE aztunnel_pool_hits_total counter",
    "aztunnel_pool_hits_total 1",
    "# HELP aztunnel_pool_legs Warm relay legs ready for a client (said hello, not yet used).",
    "# TYPE aztunnel_pool_legs gauge",
    "aztunnel_pool_legs 2",
    "# HELP aztunnel_pool_misses_total Tunnels that found no warm leg ready (served by a fresh warm dial or a cold one).",
    "# TYPE aztunnel_pool_misses_total counter",
    "aztunnel_pool_misses_total 1",
  ];
  assert.deepEqual(poolPage(m), today);
  pool.muxStream();
  pool.muxStream();
  assert.deepEqual(poolPage(m), [
    ...today,
    "# HELP aztunnel_pool_mux_streams_total Tunnels carried on a shared, multiplexed warm leg (issue 10), not a leg of their own.",
    "# TYPE aztunnel_pool_mux_streams_total counter",
    "aztunnel_pool_mux_streams_total 2",
  ]);
});

Deno.test("metrics: with entryNames each entry has its own pool series, from 0", () => {
  const m = bare(true);
  const db = m.pool("db");
  const web = m.pool("web");
  assert.equal(m.pool("db"), db, "one set per entry");
  assert.notEqual(db, web);
  db.legs(3);
  db.legs(-1);
  db.hit();
  web.miss();
  web.earlyData(5);
  web.muxStream();
  assert.deepEqual(poolPage(m), [
    ...POOL_HELP,
    'aztunnel_early_data_bytes_total{name="db"} 0',
    'aztunnel_early_data_bytes_total{name="web"} 5',
    "# HELP aztunnel_pool_hits_total Tunnels opened on a warm leg.",
    "# TYPE aztunnel_pool_hits_total counter",
    'aztunnel_pool_hits_total{name="db"} 1',
    'aztunnel_pool_hits_total{name="web"} 0',
    "# HELP aztunnel_pool_legs Warm relay legs ready for a client (said hello, not yet used).",
    "# TYPE aztunnel_pool_legs gauge",
    'aztunnel_pool_legs{name="db"} 2',
    'aztunnel_pool_legs{name="web"} 0',
    "# HELP aztunnel_pool_misses_total Tunnels that found no warm leg ready (served by a fresh warm dial or a cold one).",
    "# TYPE aztunnel_pool_misses_total counter",
    'aztunnel_pool_misses_total{name="db"} 0',
    'aztunnel_pool_misses_total{name="web"} 1',
    "# HELP aztunnel_pool_mux_streams_total Tunnels carried on a shared, multiplexed warm leg (issue 10), not a leg of their own.",
    "# TYPE aztunnel_pool_mux_streams_total counter",
    'aztunnel_pool_mux_streams_total{name="web"} 1',
  ]);
});

Deno.test("metrics: forgetEntry drops every series of the entry, other entries keep theirs", () => {
  const m = bare(true);
  for (const name of ["db", "web"]) {
    m.bridgeStarted("sender", "t:1", name);
    m.bridgeEnded(
      "sender",
      "t:1",
      { status: "success", bytesToRelay: 1, bytesFromRelay: 2 },
      1,
      name,
    );
    m.connectionError("sender", "dial_failed", name);
    m.dialDuration("sender", 0.01, name);
    m.pool(name).hit();
    m.pool(name).muxStream();
  }
  m.setControlConnected(true, "edge");
  m.setWarmLegsHeld(1, "edge");
  const before = m.render();
  m.forgetEntry("web");
  m.forgetEntry("edge");
  const after = m.render();
  assert.doesNotMatch(after, /name="(web|edge)"/);
  const dbLines = (text: string) => text.split("\n").filter((l) => l.includes('name="db"'));
  assert.ok(dbLines(before).length > 20);
  assert.deepEqual(dbLines(after), dbLines(before));
  // The listener families had no other series: they leave the page, HELP and TYPE too.
  assert.doesNotMatch(after, /aztunnel_control_channel_connected|aztunnel_warm_legs_held/);

  // Added back: its pool series start again from 0.
  m.pool("web");
  assert.match(m.render(), /^aztunnel_pool_hits_total\{name="web"\} 0$/m);
  assert.doesNotMatch(m.render(), /aztunnel_pool_mux_streams_total\{name="web"\}/);
});

Deno.test("metrics: forgetEntry without entryNames changes nothing", () => {
  const m = bare();
  m.pool().hit();
  m.bridgeStarted("sender", "t:1");
  const before = m.render();
  m.forgetEntry("");
  assert.equal(m.render(), before);
});

Deno.test("registry: dropSeries removes matching series in every family, callbacks untouched", () => {
  const r = new Registry();
  const c = r.counter<"name" | "op">({ name: "t_total", help: "T.", labelNames: ["op", "name"] });
  c.inc({ op: "a", name: "x" });
  c.inc({ op: "a", name: "y" }, 2);
  const h = r.histogram<"name">({
    name: "t_seconds",
    help: "S.",
    labelNames: ["name"],
    buckets: [1],
  });
  h.observe({ name: "x" }, 0.5);
  r.gauge({ name: "t_plain", help: "P." }).set(undefined, 3);
  r.gauge<"name">({
    name: "t_cb",
    help: "C.",
    labelNames: ["name"],
    collect: () => [[{ name: "x" }, 1]],
  });
  r.dropSeries("name", "x");
  assert.equal(
    r.render(),
    [
      "# HELP t_cb C.",
      "# TYPE t_cb gauge",
      't_cb{name="x"} 1',
      "# HELP t_plain P.",
      "# TYPE t_plain gauge",
      "t_plain 3",
      "# HELP t_total T.",
      "# TYPE t_total counter",
      't_total{name="y",op="a"} 2',
      "",
    ].join("\n"),
  );
});
