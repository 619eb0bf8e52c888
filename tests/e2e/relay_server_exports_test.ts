/** relay-server with no key configured prints the exports a client needs, hyco included. */
import assert from "node:assert/strict";
import { spawnCli } from "../helpers/proc.ts";

const NO_KEYS = { AZTUNNEL_KEY_NAME: "", AZTUNNEL_KEY: "", AZTUNNEL_RELAY_SAS_POLICIES: "" };

async function exportsOf(args: string[]): Promise<string[]> {
  await using p = spawnCli(["relay-server", "--bind", "127.0.0.1:0", ...args], {
    env: NO_KEYS,
    stdout: "lines",
    name: "relay-server",
  });
  await p.waitForLine(/^export AZTUNNEL_RELAY_NAME=/, 20_000, { stream: "stdout" });
  await p.kill("SIGTERM");
  await p.wait();
  return p.stdoutLines;
}

Deno.test("relay-server exports: one --hyco adds AZTUNNEL_HYCO_NAME; none or two do not", async () => {
  const one = await exportsOf(["--hyco", "demo"]);
  assert.equal(one.length, 4, one.join("\n"));
  assert.match(one[0], /^export AZTUNNEL_KEY_NAME=\S+$/);
  assert.match(one[1], /^export AZTUNNEL_KEY=\S+$/);
  assert.match(one[2], /^export AZTUNNEL_RELAY_NAME=ws:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(one[3], "export AZTUNNEL_HYCO_NAME=demo");
  for (const args of [[], ["--hyco", "a", "--hyco", "b"]]) {
    const lines = await exportsOf(args);
    assert.equal(lines.length, 3, lines.join("\n"));
    assert.ok(!lines.some((l) => l.includes("AZTUNNEL_HYCO_NAME")));
  }
});
