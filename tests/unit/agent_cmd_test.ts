import assert from "node:assert/strict";
import { agentArgs } from "../../cmd/agent.ts";
import { runCli } from "../../cmd/root.ts";
import { resetLogging } from "../../lib/observe/log.ts";

Deno.test("agentArgs: connect's command-line relay flags and log settings, then --idle-exit", () => {
  const cli = new Set(["hyco", "relayCaCert"]);
  const cmd = {
    getOptionValueSource: (key: string) => (cli.has(key) ? "cli" : "env"),
    optsWithGlobals: () => ({ logLevel: "debug", logFormat: "json", metricsAddr: "127.0.0.1:9" }),
  };
  const flags = { relay: "from-env", hyco: "hc", relayCaCert: "ca.pem", persist: "10m" };
  assert.deepEqual(agentArgs(flags, cmd), [
    "--log-level",
    "debug",
    "--log-format",
    "json",
    "relay-sender",
    "agent",
    "--hyco",
    "hc",
    "--relay-ca-cert",
    "ca.pem",
    "--idle-exit",
    "10m",
  ]);
});

Deno.test("agent CLI: a bad --idle-exit or --persist is a usage error (exit 2)", async () => {
  const saved = ["AZTUNNEL_KEY_NAME", "AZTUNNEL_KEY"].map((k) => [k, Deno.env.get(k)] as const);
  Deno.env.set("AZTUNNEL_KEY_NAME", "policy");
  Deno.env.set("AZTUNNEL_KEY", "key");
  try {
    const relay = ["--relay", "ws://127.0.0.1:1", "--hyco", "hc"];
    assert.equal(await runCli(["relay-sender", "agent", ...relay, "--idle-exit", "5x"]), 2);
    assert.equal(
      await runCli(["relay-sender", "connect", ...relay, "--persist", "soon", "127.0.0.1:22"]),
      2,
    );
  } finally {
    for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
    await resetLogging();
  }
});
