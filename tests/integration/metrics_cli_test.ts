/**
 * The global metrics flags as a process: accepted by every command in any position, validated only
 * when metrics are on (a malformed address is a usage error, exit 2), and a bind failure ends the
 * command (one `aztunnel: error:` line, exit 1). `demo` serves them too.
 */
import assert from "node:assert/strict";
import { logAttr, runCli, sasEnv, spawnCli } from "../helpers/proc.ts";
import { sample, scrape } from "../helpers/metrics.ts";

const RID =
  "/subscriptions/00000000-0000-0000-0000-000000000004/resourceGroups/rg/providers/Microsoft.HybridCompute/machines/vm";
/** Nothing listens here, and nothing is dialled before the flag checks anyway. */
const RELAY = ["--relay", "ws://127.0.0.1:1", "--hyco", "x"];

const COMMANDS: Record<string, string[]> = {
  "relay-listener": ["relay-listener", ...RELAY],
  "port-forward": ["relay-sender", "port-forward", "127.0.0.1:9", ...RELAY],
  "socks5-proxy": ["relay-sender", "socks5-proxy", ...RELAY],
  "connect": ["relay-sender", "connect", "127.0.0.1:9", ...RELAY],
  "arc connect": ["arc", "connect", "--resource-id", RID],
  "arc port-forward": ["arc", "port-forward", "--resource-id", RID],
  "relay-server": ["relay-server", "--bind", "127.0.0.1:0"],
};

Deno.test("metrics flags: a negative --metrics-max-targets is a usage error on every command", async () => {
  const env = sasEnv();
  await Promise.all(
    Object.entries(COMMANDS).map(async ([name, args], i) => {
      // Before the command for half of them, after it for the others: the flags are global.
      const flags = ["--metrics-addr", "127.0.0.1:0", "--metrics-max-targets", "-1"];
      const argv = i % 2 === 0 ? [...flags, ...args] : [...args, ...flags];
      const res = await runCli(argv, { env });
      assert.equal(res.code, 2, `${name}: ${res.stderr}`);
      assert.match(
        res.stderr,
        /^aztunnel: error: --metrics-max-targets must be >= 0, got -1$/m,
        name,
      );
      assert.doesNotMatch(res.stderr, /metrics server listening/, name);
    }),
  );
});

Deno.test("metrics flags: a negative --metrics-max-targets is a usage error while metrics are off too", async () => {
  const res = await runCli([...COMMANDS.connect, "--metrics-max-targets", "-1"], {
    env: { ...sasEnv(), AZTUNNEL_METRICS_ADDR: "" },
  });
  assert.equal(res.code, 2, res.stderr);
  assert.match(res.stderr, /^aztunnel: error: --metrics-max-targets must be >= 0, got -1$/m);
});

Deno.test("metrics flags: a malformed --metrics-max-targets is always a usage error", async () => {
  const res = await runCli([...COMMANDS.connect, "--metrics-max-targets", "many"], {
    env: sasEnv(),
  });
  assert.equal(res.code, 2, res.stderr);
  assert.match(
    res.stderr,
    /^aztunnel: error: invalid --metrics-max-targets "many": expected an integer$/m,
  );
});

Deno.test("metrics flags: a malformed --metrics-addr is a usage error (exit 2) on every command", async () => {
  const env = sasEnv();
  const cases: [string, string[], Record<string, string>][] = [
    ...Object.entries(COMMANDS).map((
      [name, args],
      i,
    ): [string, string[], Record<string, string>] => [
      name,
      [...args, "--metrics-addr", i % 2 === 0 ? "bogus" : "127.0.0.1:99999"],
      {},
    ]),
    ["demo", ["demo", "--once", "--metrics-addr", "bogus"], {}],
    ["env", COMMANDS["port-forward"], { AZTUNNEL_METRICS_ADDR: "bad" }],
  ];
  await Promise.all(cases.map(async ([name, argv, extra]) => {
    const res = await runCli(argv, { env: { ...env, ...extra } });
    assert.equal(res.code, 2, `${name}: ${res.stderr}`);
    const value = extra.AZTUNNEL_METRICS_ADDR ?? argv[argv.length - 1];
    assert.equal(
      res.stderr,
      `aztunnel: error: invalid --metrics-addr "${value}": expected host:port\n`,
      name,
    );
  }));
});

Deno.test("metrics flags: demo --once --metrics-addr serves and logs its address", async () => {
  const res = await runCli(["demo", "--once", "--metrics-addr", "127.0.0.1:0"], {
    env: { AZTUNNEL_KEY_NAME: "", AZTUNNEL_KEY: "" },
  });
  assert.equal(res.code, 0, res.stderr + res.text);
  // The demo quietens its components' INFO lines, not the ops server's.
  assert.match(
    res.stderr,
    /^time=\S+ level=INFO msg="metrics server listening" addr=127\.0\.0\.1:\d+$/m,
  );
  assert.equal(res.stderr.trim().split("\n").length, 1, res.stderr);
  const addr = /addr=(\S+)/.exec(res.stderr)?.[1];
  assert.match(
    res.text,
    new RegExp(`^  metrics +http://${addr}/metrics  \\(also /healthz, /readyz\\)$`, "m"),
  );
});

Deno.test("metrics flags: a running demo serves the relay's and the tunnels' metrics in one registry", async () => {
  await using demo = spawnCli(["demo", "--metrics-addr", "127.0.0.1:0"], {
    env: { AZTUNNEL_KEY_NAME: "", AZTUNNEL_KEY: "" },
    stdout: "lines",
    name: "demo",
  });
  const addr = logAttr((await demo.waitForLine(/metrics server listening/)).input ?? "", "addr");
  assert.ok(addr, demo.stderr);
  await demo.waitForLine(/Press Ctrl-C to stop/, 30_000, { stream: "stdout" });
  const ready = await scrape(addr, "/readyz");
  assert.deepEqual([ready.status, ready.body], [200, "ready\n"]);
  assert.equal((await scrape(addr, "/healthz")).status, 200);
  const { body } = await scrape(addr, "/metrics");
  assert.equal(sample(body, "aztunnel_relay_listeners"), 1);
  // The self-check's two tunnels, seen by the relay and by both tunnel ends.
  assert.equal(sample(body, "aztunnel_relay_bridged_connections_total"), 2);
  assert.equal(sample(body, "aztunnel_control_channel_connected"), 1);
  assert.match(body, /^aztunnel_connections_total\{role="sender",.*\} 1$/m);
  assert.match(body, /^aztunnel_connections_total\{role="listener",.*\} 1$/m);
  demo.child.kill("SIGINT");
  const status = await demo.wait(15_000);
  assert.equal(status.code, 0, demo.stderr);
});

Deno.test("metrics flags: a metrics address that cannot be bound ends the command with exit 1", async () => {
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const res = await runCli(
      [...COMMANDS["port-forward"], "--metrics-addr", `127.0.0.1:${busy.addr.port}`],
      { env: sasEnv() },
    );
    assert.equal(res.code, 1, res.stderr);
    assert.match(res.stderr, /^aztunnel: error: metrics server listen 127\.0\.0\.1:\d+: /m);
    // Reported once: no ERROR log line repeating the same failure.
    assert.equal(res.stderr.match(/Address already in use/g)?.length, 1, res.stderr);
    assert.doesNotMatch(res.stderr, /msg="metrics server failed"/);
    // The ops server comes first: no tunnel work started.
    assert.doesNotMatch(res.stderr, /port-forward listening/);
  } finally {
    busy.close();
  }
});

Deno.test("metrics flags: listed in the root help", async () => {
  const res = await runCli(["--help"]);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.text, /--metrics-addr <addr>/);
  assert.match(res.text, /--metrics-max-targets <n>/);
  assert.match(res.text, /AZTUNNEL_METRICS_ADDR/);
});
