/**
 * The global metrics flags as a process: accepted by every command in any position, validated only
 * when metrics are on, and a bind failure ends the command (ERROR `metrics server failed`, exit 1).
 */
import assert from "node:assert/strict";
import { runCli, sasEnv } from "../helpers/proc.ts";

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

Deno.test("metrics flags: --metrics-max-targets is not checked while metrics are off", async () => {
  const res = await runCli([...COMMANDS.connect, "--metrics-max-targets", "-1"], {
    env: { ...sasEnv(), AZTUNNEL_METRICS_ADDR: "" },
  });
  assert.equal(res.code, 1, res.stderr);
  assert.doesNotMatch(res.stderr, /metrics/);
  assert.match(res.stderr, /^aztunnel: error: .*relay/m);
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

Deno.test("metrics flags: a metrics address that cannot be bound ends the command with exit 1", async () => {
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const res = await runCli(
      [...COMMANDS["port-forward"], "--metrics-addr", `127.0.0.1:${busy.addr.port}`],
      { env: sasEnv() },
    );
    assert.equal(res.code, 1, res.stderr);
    assert.match(res.stderr, /level=ERROR msg="metrics server failed" error=/);
    assert.match(res.stderr, /^aztunnel: error: metrics server listen 127\.0\.0\.1:\d+: /m);
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
