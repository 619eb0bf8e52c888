/**
 * `aztunnel up -c FILE` as a process against relay-server: the README's example file carrying data
 * through a port-forward, a SOCKS5 and an HTTP proxy tunnel, `--check`, a bind conflict with and
 * without `--keep-going`, and SIGHUP reloads that keep open tunnels.
 */
import assert from "node:assert/strict";
import {
  freePort,
  logAttr,
  type Proc,
  REPO_ROOT,
  run,
  runCli,
  spawnCli,
  startRelayServer,
} from "../helpers/proc.ts";
import { sample, scrape } from "../helpers/metrics.ts";
import {
  echoOnce,
  httpBody,
  roundTrip,
  socks5Connect,
  startEchoServer,
  startHttpServer,
} from "../helpers/servers.ts";

const EXAMPLE = `${REPO_ROOT}tests/fixtures/up_example.yaml`;
const curlAvailable = await run("curl", ["--version"]).then((r) => r.code === 0, () => false);

/** Writes `text` to a fresh temporary .yaml file. */
async function configFile(text: string): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "aztunnel-up-", suffix: ".yaml" });
  await Deno.writeTextFile(path, text);
  return path;
}

/** `aztunnel up -c path --relay url` with the relay's credentials. */
function startUp(
  relay: { url: string; env: Record<string, string> },
  path: string,
  args: string[] = [],
): Proc {
  return spawnCli(["--log-level", "debug", "up", "-c", path, "--relay", relay.url, ...args], {
    env: relay.env,
    name: "up",
  });
}

/** The port an entry bound, from its `… listening` line. */
async function boundPort(up: Proc, name: string): Promise<number> {
  const line = (await up.waitForLine(new RegExp(`listening.* entry=${name}( |$)`))).input ?? "";
  const bind = logAttr(line, "bind") ?? "";
  return Number(bind.slice(bind.lastIndexOf(":") + 1));
}

Deno.test("up: the README example runs a listener, a port-forward, a SOCKS5 and an HTTP proxy", async () => {
  await using echo = startEchoServer();
  await using http = startHttpServer();
  await using relay = await startRelayServer();
  const example = await Deno.readTextFile(EXAMPLE);
  const ports = { db: freePort(), browse: freePort(), web: freePort() };
  // Only the ports change: the README's targets and binds become this machine's free ones.
  const swaps: [string, string][] = [
    ["127.0.0.1:5432", `127.0.0.1:${echo.port}`],
    ["127.0.0.1:8080", `127.0.0.1:${http.port}`],
    ["127.0.0.1:15432", `127.0.0.1:${ports.db}`],
    ["127.0.0.1:1080", `127.0.0.1:${ports.browse}`],
    ["127.0.0.1:3128", `127.0.0.1:${ports.web}`],
  ];
  let text = example;
  for (const [from, to] of swaps) {
    assert.ok(text.includes(from), `the example names ${from}`);
    text = text.replaceAll(from, to);
  }
  const path = await configFile(text);
  // The file says `relay: my-namespace`; the flag wins (flag > environment > file).
  await using up = startUp(relay, path);
  await up.waitForLine(/control_started.* entry=local( |$)/);
  assert.equal(await boundPort(up, "db"), ports.db);
  assert.equal(await boundPort(up, "browse"), ports.browse);
  assert.equal(await boundPort(up, "web"), ports.web);

  assert.equal(await echoOnce(ports.db, "through the port-forward"), "through the port-forward");
  const socks = await socks5Connect(ports.browse, "127.0.0.1", echo.port);
  assert.equal(socks.reply, 0);
  await roundTrip(socks.conn!, "through socks5");
  socks.conn!.close();
  const denied = await socks5Connect(ports.browse, "127.0.0.1", freePort());
  assert.equal(denied.reply, 0x02, "the listener's allowlist applies");
  if (curlAvailable) {
    const r = await run("curl", [
      "-sS",
      "--max-time",
      "20",
      "-x",
      `http://127.0.0.1:${ports.web}`,
      `http://127.0.0.1:${http.port}/up`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.text, httpBody("/up"));
  }
  await up.waitForLine(/msg="connection requested".* entry=local( |$)/);
  assert.equal((await up.kill("SIGTERM")).code, 0);
  await Deno.remove(path);
});

Deno.test("up --check: the example is valid; errors name file:line:column and exit 2", async () => {
  const ok = await runCli(["up", "--check", "-c", EXAMPLE]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(ok.text.trimEnd().split("\n"), [
    "listener local: allow 127.0.0.1:5432,127.0.0.1:8080 max-connections 100 via my-namespace hyco my-hyco",
    "port-forward db: 127.0.0.1:15432 -> 127.0.0.1:5432 via my-namespace hyco my-hyco",
    "socks5-proxy browse: 127.0.0.1:1080 via my-namespace hyco my-hyco",
    "http-proxy web: 127.0.0.1:3128 via my-namespace hyco my-hyco",
  ]);
  const env = { AZTUNNEL_KEEP_GOING: "maybe" };
  const badEnv = await runCli(["up", "--check", "-c", EXAMPLE], { env });
  assert.equal(badEnv.code, 2);
  assert.match(badEnv.stderr, /invalid AZTUNNEL_KEEP_GOING "maybe": expected true or false/);
  const path = await configFile(
    "relay: ns\nhyco: h\nsas-key: abc\ntunnels:\n  - name: db\n    port-forward: nope\n    bind: 127.0.0.1:1\n",
  );
  const bad = await runCli(["up", "--check", "-c", path]);
  assert.equal(bad.code, 2);
  const lines = bad.stderr.trimEnd().split("\n");
  assert.match(lines[0], new RegExp(`^${path}:3:1: "sas-key" looks like a secret`));
  assert.equal(lines[1], `${path}:6:19: invalid target "nope": expected host:port`);
  assert.equal(lines[2], `aztunnel: error: ${path}: 2 errors`);
  assert.equal(bad.text, "");
  await Deno.remove(path);
});

/** A listener and two port-forwards; `db` binds `dbBind`. */
function twoTunnels(dbBind: string, echoPort: number, otherPort = 0): string {
  return [
    "hyco: up-e2e",
    "listeners:",
    `  - allow: ["127.0.0.1:${echoPort}"]`,
    "tunnels:",
    "  - name: db",
    `    port-forward: 127.0.0.1:${echoPort}`,
    `    bind: ${dbBind}`,
    "  - name: other",
    `    port-forward: 127.0.0.1:${echoPort}`,
    `    bind: 127.0.0.1:${otherPort}`,
    "",
  ].join("\n");
}

Deno.test("up: an entry that cannot bind fails the start naming it (exit 1)", async () => {
  await using relay = await startRelayServer();
  await using echo = startEchoServer();
  using busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const path = await configFile(twoTunnels(`127.0.0.1:${busy.addr.port}`, echo.port));
  await using up = startUp(relay, path);
  const status = await up.wait();
  assert.equal(status.code, 1);
  assert.match(up.stderr, /aztunnel: error: port-forward "db": failed to start: /);
  assert.match(up.stderr, /msg="entry failed" entry=db kind=port-forward/);
  await Deno.remove(path);
});

Deno.test("up --keep-going: the others run and /readyz names the failed entry", async () => {
  await using relay = await startRelayServer();
  await using echo = startEchoServer();
  using busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const path = await configFile(twoTunnels(`127.0.0.1:${busy.addr.port}`, echo.port));
  await using up = startUp(relay, path, ["--keep-going", "--metrics-addr", "127.0.0.1:0"]);
  const ops = logAttr((await up.waitForLine(/metrics server listening/)).input ?? "", "addr")!;
  const other = await boundPort(up, "other");
  await up.waitForLine(/control_started/);
  assert.equal(await echoOnce(other, "still here"), "still here");
  const ready = await scrape(ops, "/readyz");
  assert.equal(ready.status, 503);
  assert.match(ready.body, /failed entries: db \(failed to start: /);
  const metrics = await scrape(ops, "/metrics");
  assert.equal(sample(metrics.body, 'aztunnel_entry_ready{kind="port-forward",name="db"}'), 0);
  assert.equal(sample(metrics.body, 'aztunnel_entry_ready{kind="port-forward",name="other"}'), 1);
  // Per-entry series: the tunnel's and the listener's own, by name (1 while echoOnce's tunnel has
  // not yet ended on the sender's side).
  assert.equal(sample(metrics.body, 'aztunnel_control_channel_connected{name="listener-1"}'), 1);
  assert.match(
    metrics.body,
    new RegExp(
      `^aztunnel_active_connections\\{name="other",role="sender",target="127\\.0\\.0\\.1:${echo.port}"\\} [01]$`,
      "m",
    ),
  );
  assert.match(metrics.body, /^aztunnel_active_connections\{name="listener-1",role="listener",/m);
  assert.equal((await up.kill("SIGTERM")).code, 0);
  await Deno.remove(path);
});

Deno.test("up: SIGHUP adds a tunnel and swaps the allowlist; an open tunnel survives", async () => {
  await using relay = await startRelayServer();
  await using echo = startEchoServer();
  await using echo2 = startEchoServer();
  const path = await configFile(twoTunnels("127.0.0.1:0", echo.port));
  await using up = startUp(relay, path);
  const db = await boundPort(up, "db");
  await up.waitForLine(/control_started/);
  const open = await Deno.connect({ hostname: "127.0.0.1", port: db });
  await roundTrip(open, "before the reload");

  // Invalid: logged with its position, and the running entries stay.
  await Deno.writeTextFile(path, twoTunnels("127.0.0.1:0", echo.port) + "bogus: 1\n");
  const from = up.stderrLines.length;
  Deno.kill(up.pid, "SIGHUP");
  await up.waitForLine(
    new RegExp(`msg="config reload failed" error="${path}:11:1: unknown key`),
    20_000,
    { from },
  );
  await roundTrip(open, "after the failed reload");

  // The allowlist moves to echo2 only, and a SOCKS5 tunnel appears.
  const socksPort = freePort();
  const next = twoTunnels("127.0.0.1:0", echo.port).replace(
    `allow: ["127.0.0.1:${echo.port}"]`,
    `allow: ["127.0.0.1:${echo2.port}"]`,
  ) +
    `  - name: socks\n    socks5-proxy: 127.0.0.1:${socksPort}\n`;
  await Deno.writeTextFile(path, next);
  const mark = up.stderrLines.length;
  Deno.kill(up.pid, "SIGHUP");
  await up.waitForLine(/msg="config reloaded".* started=socks( |$)/, 20_000, { from: mark });
  assert.match(up.stderrLines.slice(mark).join("\n"), /msg="allowlist updated".* entry=listener-1/);
  await roundTrip(open, "the open tunnel was not cut");
  const socks = await socks5Connect(socksPort, "127.0.0.1", echo2.port);
  assert.equal(socks.reply, 0);
  await roundTrip(socks.conn!, "newly allowed");
  socks.conn!.close();
  const old = await socks5Connect(socksPort, "127.0.0.1", echo.port);
  assert.equal(old.reply, 0x02, "the old target is no longer allowed for new tunnels");
  open.close();
  assert.equal((await up.kill("SIGTERM")).code, 0);
  await Deno.remove(path);
});

Deno.test("up: the file's log-format and metrics-addr apply unless a flag gives them", async () => {
  await using relay = await startRelayServer();
  const path = await configFile(
    "log-format: json\nmetrics-addr: 127.0.0.1:0\nhyco: g\ntunnels:\n  - name: s\n    socks5-proxy: 127.0.0.1:0\n",
  );
  await using fromFile = spawnCli(["up", "-c", path, "--relay", relay.url], {
    env: relay.env,
    name: "up",
  });
  const line = (await fromFile.waitForLine(/"msg":"metrics server listening"/)).input ?? "";
  assert.equal((await scrape(logAttr(line, "addr")!, "/readyz")).status, 200);
  await fromFile.waitForLine(/"msg":"socks5-proxy listening".*"entry":"s"/);
  assert.equal((await fromFile.kill("SIGTERM")).code, 0);

  await using flagged = spawnCli(
    ["--log-format", "logfmt", "up", "-c", path, "--relay", relay.url],
    {
      env: { ...relay.env, AZTUNNEL_METRICS_ADDR: "" },
      name: "up",
    },
  );
  await flagged.waitForLine(/msg="socks5-proxy listening" entry=s /);
  assert.doesNotMatch(flagged.stderr, /metrics server listening/);
  assert.equal((await flagged.kill("SIGTERM")).code, 0);
  await Deno.remove(path);
});

Deno.test("up: /metrics has each tunnel's pool series by name; SIGHUP removing one drops them", async () => {
  await using relay = await startRelayServer();
  await using echo = startEchoServer();
  const path = await configFile(twoTunnels("127.0.0.1:0", echo.port));
  await using up = startUp(relay, path, ["--metrics-addr", "127.0.0.1:0"]);
  const ops = logAttr((await up.waitForLine(/metrics server listening/)).input ?? "", "addr")!;
  const other = await boundPort(up, "other");
  await boundPort(up, "db");
  const pool = (body: string) => body.split("\n").filter((l) => /^aztunnel_pool_/.test(l));
  // No tunnel yet, so nothing is warm: every pool series is 0.
  assert.deepEqual(pool((await scrape(ops, "/metrics")).body), [
    'aztunnel_pool_hits_total{name="db"} 0',
    'aztunnel_pool_hits_total{name="other"} 0',
    'aztunnel_pool_legs{name="db"} 0',
    'aztunnel_pool_legs{name="other"} 0',
    'aztunnel_pool_misses_total{name="db"} 0',
    'aztunnel_pool_misses_total{name="other"} 0',
  ]);
  await up.waitForLine(/control_started/);
  assert.equal(await echoOnce(other, "counted"), "counted");

  const kept = twoTunnels("127.0.0.1:0", echo.port).replace(/ {2}- name: other\n.*\n.*\n$/, "");
  await Deno.writeTextFile(path, kept);
  const mark = up.stderrLines.length;
  Deno.kill(up.pid, "SIGHUP");
  await up.waitForLine(/msg="entry removed" entry=other kind=port-forward/, 20_000, {
    from: mark,
  });
  const body = (await scrape(ops, "/metrics")).body;
  assert.doesNotMatch(body, /name="other"/);
  assert.deepEqual(pool(body).map((l) => l.replace(/ \d+$/, "")), [
    'aztunnel_pool_hits_total{name="db"}',
    'aztunnel_pool_legs{name="db"}',
    'aztunnel_pool_misses_total{name="db"}',
  ]);
  assert.equal((await up.kill("SIGTERM")).code, 0);
  await Deno.remove(path);
});
