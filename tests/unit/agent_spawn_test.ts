import assert from "node:assert/strict";
import { selfArgv, spawnDetached, waitForAgent } from "../../lib/agent/spawn.ts";
import { agentPaths } from "../../lib/agent/paths.ts";

Deno.test("selfArgv: `deno run` with this process's unscoped permissions and main module", () => {
  assert.equal(Deno.build.standalone, false);
  const argv = selfArgv(["relay-sender", "agent"]);
  assert.equal(argv.cmd, Deno.execPath());
  // This test runs with -A: every permission is passed on, and nothing prompts.
  assert.deepEqual(argv.args, [
    "run",
    "--quiet",
    "--no-prompt",
    "--allow-net",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-sys",
    "--allow-run",
    "--allow-ffi",
    "--allow-import",
    Deno.mainModule,
    "relay-sender",
    "agent",
  ]);
});

Deno.test("spawnDetached + waitForAgent: a child that exits without listening gives null", async () => {
  const runtime = await Deno.makeTempDir({ prefix: "agent-spawn-" });
  try {
    const paths = await agentPaths(
      { scheme: "ws", host: "127.0.0.1:1" },
      "hc",
      new Map([["XDG_RUNTIME_DIR", runtime]]),
      Deno.uid(),
    );
    const started = spawnDetached({ cmd: Deno.execPath(), args: ["eval", "Deno.exit(3)"] });
    assert.equal(await waitForAgent(paths, Deno.uid() ?? 0, started, 20_000), null);
    assert.equal(await started.exited, 3);
  } finally {
    await Deno.remove(runtime, { recursive: true });
  }
});
