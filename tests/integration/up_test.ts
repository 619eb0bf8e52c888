/**
 * `up`'s supervisor with the real entry launchers (cmd/up_launch.ts) against the in-process relay:
 * logs carry the entry's name, a reload restarts a changed tunnel on its new bind, stops a removed
 * one and swaps a listener's allowlist without touching its control channel or the open tunnels;
 * metrics carry each entry's name (the warm-pool series too, gone with an entry a reload removes),
 * and a listener's max-connections changes in place.
 */
import assert from "node:assert/strict";
import { deadline } from "../../lib/async.ts";
import { launcher } from "../../cmd/up_launch.ts";
import type { Ops } from "../../cmd/ops.ts";
import { resolveEntries } from "../../lib/config/precedence.ts";
import { Supervisor } from "../../lib/config/supervisor.ts";
import type { Entry } from "../../lib/config/types.ts";
import { validateConfig } from "../../lib/config/validate.ts";
import { getLogger } from "../../lib/observe/log.ts";
import { Metrics } from "../../lib/observe/metrics.ts";
import type { TokenProvider } from "../../lib/relay/token.ts";
import { metricsObserver } from "../../lib/tunnel/metrics_observer.ts";
import { captureLogs } from "../helpers/logs.ts";
import { freePort } from "../helpers/proc.ts";
import {
  echoOnce,
  readExactly,
  roundTrip,
  socks5Connect,
  startEchoServer,
} from "../helpers/servers.ts";
import { startLocalRelay } from "../helpers/tunnel_stack.ts";

function config(relayUrl: string, text: string): Entry[] {
  return resolveEntries(validateConfig(`relay: ${relayUrl}\nhyco: up\n${text}`, "up.yaml"), {});
}

async function startSupervisor(
  relayUrl: string,
  tokens: TokenProvider,
  text: string,
  metrics?: Metrics,
) {
  const stop = new AbortController();
  // As runWithOps builds it for `up` (entryNames): the metrics hooks come per entry.
  const ops: Ops = {
    signal: stop.signal,
    force: new AbortController().signal,
    tokens: (t) => t,
    metrics,
    entryObserver: (name) => metrics && metricsObserver(metrics, name),
  };
  const gone: string[] = [];
  const goneWaiters = new Set<() => void>();
  const sup = new Supervisor({
    launch: launcher({ ops, tokens, logger: getLogger(), caCerts: () => undefined }),
    keepGoing: false,
    logger: getLogger(),
    signal: stop.signal,
    // As cmd/up.ts wires it.
    onGone: (name) => {
      metrics?.forgetEntry(name);
      gone.push(name);
      for (const w of [...goneWaiters]) w();
    },
  });
  await sup.start(config(relayUrl, text));
  const running = sup.run();
  return {
    sup,
    reload: (next: string) => sup.reload(config(relayUrl, next)),
    /** Resolves once a removed entry `name` has stopped and was let go. */
    untilGone: (name: string) => {
      let check!: () => void;
      const reached = new Promise<void>((resolve) => {
        check = () => gone.includes(name) && resolve();
        goneWaiters.add(check);
        check();
      });
      return deadline(reached, 10_000, { onTimeout: () => new Error(`${name} not gone`) })
        .finally(() => goneWaiters.delete(check));
    },
    [Symbol.asyncDispose]: async () => {
      stop.abort();
      await running;
    },
  };
}

function file(allow: number, tunnels: [string, string][]): string {
  return `listeners:\n  - name: edge\n    allow: ["127.0.0.1:${allow}"]\n    drain-timeout: 1s\ntunnels:\n` +
    tunnels.map(([name, rest]) => `  - name: ${name}\n    drain-timeout: 1s\n${rest}`).join("");
}

Deno.test("up: entries log their name; a reload restarts, stops and swaps without cutting", async () => {
  await using logs = await captureLogs();
  await using echo = startEchoServer();
  await using echo2 = startEchoServer();
  const { server, relay } = await startLocalRelay();
  try {
    const [keep, moved, moved2, gone] = [freePort(), freePort(), freePort(), freePort()];
    const pf = (port: number, target = echo.port) =>
      `    port-forward: 127.0.0.1:${target}\n    bind: 127.0.0.1:${port}\n`;
    await using up = await startSupervisor(
      server.url,
      relay.tokens,
      file(echo.port, [["keep", pf(keep)], ["moved", pf(moved)], [
        "gone",
        `    socks5-proxy: 127.0.0.1:${gone}\n`,
      ]]),
    );
    await logs.waitFor([/msg=control_started/, / entry=edge /]);
    assert.equal(up.sup.readiness().ready, true);
    const open = await Deno.connect({ hostname: "127.0.0.1", port: keep });
    await roundTrip(open, "first");
    await logs.waitFor([/msg="connection requested"/, / entry=keep /]);
    await logs.waitFor([/msg="connection requested"/, / entry=edge /]);

    await up.reload(file(echo2.port, [["keep", pf(keep)], ["moved", pf(moved2, echo2.port)]]));
    await logs.waitFor(
      /msg="config reloaded" started="" stopped=gone restarted=moved updated=edge/,
    );
    assert.equal(logs.count(/msg=control_started/), 1, "the listener kept its control channel");
    await roundTrip(open, "the open tunnel of an unchanged entry survives");
    assert.equal(await echoOnce(moved2, "moved"), "moved");
    await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: gone }));
    await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: moved }));
    // The old target is outside the new allowlist: a new tunnel to it is refused.
    const refused = await Deno.connect({ hostname: "127.0.0.1", port: keep });
    const buf = new Uint8Array(1);
    await refused.write(new TextEncoder().encode("x")).catch(() => 0);
    assert.equal(await refused.read(buf).catch(() => null), null);
    refused.close();
    await logs.waitFor([/msg="target not allowed"/, / entry=edge /]);
    open.close();
  } finally {
    await server.close();
  }
});

Deno.test("up: a listener with no allowlist warns with its name; socks5 through it", async () => {
  await using logs = await captureLogs();
  await using echo = startEchoServer();
  const { server, relay } = await startLocalRelay();
  try {
    const socks = freePort();
    await using _up = await startSupervisor(
      server.url,
      relay.tokens,
      `listeners:\n  - {}\ntunnels:\n  - name: s\n    socks5-proxy: 127.0.0.1:${socks}\n`,
    );
    await logs.waitFor([/msg="no allowlist configured/, / entry=listener-1/]);
    await logs.waitFor(/msg=control_started/);
    const r = await socks5Connect(socks, "127.0.0.1", echo.port);
    assert.equal(r.reply, 0);
    await roundTrip(r.conn!, "socks");
    r.conn!.close();
  } finally {
    await server.close();
  }
});

/** A sample's value in a /metrics text, or undefined when the series is absent. */
function sample(text: string, series: string): number | undefined {
  const hit = text.split("\n").find((l) => l.startsWith(series + " "));
  return hit === undefined ? undefined : Number(hit.slice(series.length + 1));
}

/** Listener `edge` (at most `max` tunnels) and cold port-forwards `db` and `web` to `echo`. */
function limited(max: number, echo: number, db: number, web: number): string {
  const pf = (name: string, port: number) =>
    `  - name: ${name}\n    port-forward: 127.0.0.1:${echo}\n    bind: 127.0.0.1:${port}\n` +
    "    pool-min: 0\n    pool-max: 0\n    drain-timeout: 1s\n";
  return `listeners:\n  - name: edge\n    allow: ["127.0.0.1:${echo}"]\n    max-connections: ${max}\n` +
    `    drain-timeout: 1s\ntunnels:\n${pf("db", db)}${pf("web", web)}`;
}

Deno.test("up: metrics carry entry names; max-connections changes in place on reload", async () => {
  await using logs = await captureLogs();
  await using echo = startEchoServer();
  const { server, relay } = await startLocalRelay();
  const metrics = new Metrics({ processMetrics: false, entryNames: true });
  try {
    const [db, web] = [freePort(), freePort()];
    await using up = await startSupervisor(
      server.url,
      relay.tokens,
      limited(1, echo.port, db, web),
      metrics,
    );
    await logs.waitFor([/msg=control_started/, / entry=edge /]);
    const first = await Deno.connect({ hostname: "127.0.0.1", port: db });
    await roundTrip(first, "takes the only slot");

    // At the limit: web's tunnel is refused (503) and its sender keeps retrying.
    const second = await Deno.connect({ hostname: "127.0.0.1", port: web });
    const written = second.write(new TextEncoder().encode("x"));
    await logs.waitFor([/msg=accept_dropped/, /reason=semaphore_full/, / entry=edge /]);
    await written;

    await up.reload(limited(2, echo.port, db, web));
    await logs.waitFor(/msg="config reloaded" started="" stopped="" restarted="" updated=edge/);
    await logs.waitFor([/msg="max connections updated"/, /max_connections=2/, / entry=edge /]);
    assert.equal(logs.count(/msg=control_started/), 1, "the listener kept its control channel");
    assert.equal(new TextDecoder().decode(await readExactly(second, 1)), "x", "a retry got in");
    await roundTrip(first, "the open tunnel survives the change");

    // Lowered below the open count: both stay open.
    await up.reload(limited(1, echo.port, db, web));
    await logs.waitFor([/msg="max connections updated"/, /max_connections=1/]);
    await roundTrip(first, "still open");
    await roundTrip(second, "still open too");

    const text = metrics.render();
    const active = (name: string, role: string) =>
      sample(
        text,
        `aztunnel_active_connections{name="${name}",role="${role}",target="127.0.0.1:${echo.port}"}`,
      );
    assert.equal(active("db", "sender"), 1);
    assert.equal(active("web", "sender"), 1);
    assert.equal(active("edge", "listener"), 2);
    assert.equal(sample(text, 'aztunnel_control_channel_connected{name="edge"}'), 1);
    assert.ok(
      (sample(text, 'aztunnel_dial_duration_seconds_count{name="web",role="sender"}') ?? 0) >= 1,
    );
    assert.doesNotMatch(text, /^aztunnel_(?!token|build)\w+(\{(?![^}]*name=)[^}]*\})? /m);
    first.close();
    second.close();
  } finally {
    await server.close();
  }
});

/** Listener `edge` and port-forwards `db` and `web` (warm pools on, the defaults) to `echo`. */
function pooled(echo: number, tunnels: [string, number][]): string {
  return `listeners:\n  - name: edge\n    allow: ["127.0.0.1:${echo}"]\n    drain-timeout: 1s\n` +
    "tunnels:\n" +
    tunnels.map(([name, port]) =>
      `  - name: ${name}\n    port-forward: 127.0.0.1:${echo}\n    bind: 127.0.0.1:${port}\n` +
      "    drain-timeout: 1s\n"
    ).join("");
}

/** The sample lines of the warm-pool families, in page order. */
function poolLines(text: string): string[] {
  return text.split("\n").filter((l) => /^aztunnel_(pool_|early_data_)/.test(l));
}

Deno.test("up: each tunnel entry has its own pool series; a removed entry's series go", async () => {
  await using logs = await captureLogs();
  await using echo = startEchoServer();
  const { server, relay } = await startLocalRelay();
  const metrics = new Metrics({ processMetrics: false, entryNames: true });
  try {
    const [db, web] = [freePort(), freePort()];
    await using up = await startSupervisor(
      server.url,
      relay.tokens,
      pooled(echo.port, [["db", db], ["web", web]]),
      metrics,
    );
    await logs.waitFor([/msg=control_started/, / entry=edge /]);
    // The hook multiplexing will call (issue 10); nothing calls it yet.
    metrics.pool("web").muxStream();
    assert.deepEqual(poolLines(metrics.render()), [
      'aztunnel_early_data_bytes_total{name="db"} 0',
      'aztunnel_early_data_bytes_total{name="web"} 0',
      'aztunnel_pool_hits_total{name="db"} 0',
      'aztunnel_pool_hits_total{name="web"} 0',
      'aztunnel_pool_legs{name="db"} 0',
      'aztunnel_pool_legs{name="web"} 0',
      'aztunnel_pool_misses_total{name="db"} 0',
      'aztunnel_pool_misses_total{name="web"} 0',
      'aztunnel_pool_mux_streams_total{name="web"} 1',
    ]);

    // Each entry's first tunnel finds no warm leg (none before a listener granted `warm`): a miss
    // of its own.
    for (const port of [db, web]) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await roundTrip(conn, "through the entry");
      conn.close();
    }
    const during = metrics.render();
    for (const name of ["db", "web"]) {
      assert.equal(sample(during, `aztunnel_pool_misses_total{name="${name}"}`), 1);
      assert.equal(sample(during, `aztunnel_pool_hits_total{name="${name}"}`), 0);
    }
    assert.match(during, /^aztunnel_dial_duration_seconds_count\{name="web",role="sender"\} 1$/m);

    await up.reload(pooled(echo.port, [["db", db]]));
    await logs.waitFor(/msg="config reloaded" started="" stopped=web restarted="" updated=""/);
    await up.untilGone("web");
    const after = metrics.render();
    assert.doesNotMatch(after, /name="web"/, "no series of web is left, pool or tunnel");
    assert.deepEqual(
      poolLines(after).map((l) => l.replace(/ \d+$/, "")),
      [
        'aztunnel_early_data_bytes_total{name="db"}',
        'aztunnel_pool_hits_total{name="db"}',
        'aztunnel_pool_legs{name="db"}',
        'aztunnel_pool_misses_total{name="db"}',
      ],
      "db's series stay; the mux family, web's only, leaves the page",
    );
    assert.equal(sample(after, 'aztunnel_pool_misses_total{name="db"}'), 1);
    assert.equal(sample(after, 'aztunnel_control_channel_connected{name="edge"}'), 1);
  } finally {
    await server.close();
  }
});
