/**
 * main.ts's fast path as real processes: `relay-sender connect` through a running agent without the
 * full CLI (AZTUNNEL_DEBUG_FAST_PATH=1 makes it say so on stderr), byte-exact with half-close, the
 * listener's refusal in the CLI's words, and the CLI itself whenever the fast path must not serve.
 */
import assert from "node:assert/strict";
import { pattern, sha256 } from "../helpers/bytes.ts";
import {
  connectArgs,
  type Proc,
  type RelayServer,
  runCli,
  spawnCli,
  startListener,
  startRelayServer,
} from "../helpers/proc.ts";
import { startCanary, startEchoServer, startRequestReplyServer } from "../helpers/servers.ts";

const DEBUG = ["--log-level", "debug"];

const FAST = /^aztunnel: fast path: through agent$/m;

async function withRuntimeDir<T>(fn: (runtime: string) => Promise<T>): Promise<T> {
  const runtime = await Deno.makeTempDir({ prefix: "fast-e2e-" });
  try {
    return await fn(runtime);
  } finally {
    await Deno.remove(runtime, { recursive: true });
  }
}

/** `relay-sender connect` with stdin `data`, the fast path's stderr note turned on. */
function connect(
  relay: RelayServer,
  runtime: string,
  target: string,
  data: Uint8Array,
  o: { args?: string[]; globalArgs?: string[] } = {},
) {
  return runCli(connectArgs(relay, target, o), {
    env: { ...relay.env, XDG_RUNTIME_DIR: runtime, AZTUNNEL_DEBUG_FAST_PATH: "1" },
    stdin: data,
  });
}

/** A relay, a listener and `relay-sender agent` for hyco e2e under `runtime`. */
async function withAgent(
  fn: (relay: RelayServer, runtime: string, agent: Proc) => Promise<void>,
  o: { allow?: string[]; agentGlobals?: string[] } = {},
): Promise<void> {
  await using relay = await startRelayServer();
  await using _listener = await startListener(relay, { allow: o.allow });
  await withRuntimeDir(async (runtime) => {
    await using agent = spawnCli(
      [...(o.agentGlobals ?? []), "relay-sender", "agent", "--relay", relay.url, "--hyco", "e2e"],
      { env: { ...relay.env, XDG_RUNTIME_DIR: runtime }, name: "agent" },
    );
    await agent.waitForLine(/agent listening/);
    await fn(relay, runtime, agent);
  });
}

/** Agent logs at debug: the first connect is cold, then a warm leg is ready (early data). */
async function warmUp(relay: RelayServer, runtime: string, agent: Proc, target: string) {
  const cold = await connect(relay, runtime, target, new Uint8Array());
  assert.equal(cold.code, 0, cold.stderr);
  await agent.waitForLine(/warm leg ready/);
}

Deno.test("fast connect: through a running agent, byte-exact both ways", async () => {
  await using echo = startEchoServer();
  await withAgent(async (relay, runtime) => {
    const data = pattern(512 * 1024, 9);
    const res = await connect(relay, runtime, echo.addr, data, {
      globalArgs: ["--log-format", "json"],
    });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stderr, FAST);
    assert.equal(sha256(res.stdout), sha256(data));
    // Debug logging is the CLI's, through the same agent.
    const debug = await connect(relay, runtime, echo.addr, data, {
      globalArgs: ["--log-level", "debug"],
    });
    assert.equal(debug.code, 0, debug.stderr);
    assert.match(debug.stderr, /connecting through agent/);
    assert.doesNotMatch(debug.stderr, FAST);
    assert.equal(sha256(debug.stdout), sha256(data));
  });
});

Deno.test("fast connect: stdin's EOF reaches the target, whose reply still comes back", async () => {
  // Replies only once it has read to EOF: without half-close the reply would never come.
  await using target = startRequestReplyServer((req) =>
    new TextEncoder().encode(`got ${req.length}`)
  );
  await withAgent(async (relay, runtime) => {
    const res = await connect(relay, runtime, target.addr, pattern(70_000, 1));
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stderr, FAST);
    assert.equal(res.text, "got 70000");
  });
});

Deno.test("fast connect: a refused target ends with the CLI's error line and exit 1", async () => {
  await withAgent(async (relay, runtime) => {
    const fast = await connect(relay, runtime, "10.0.0.5:22", new Uint8Array());
    // --log-level debug leaves it to the CLI, which takes the same agent.
    const cli = await connect(relay, runtime, "10.0.0.5:22", new Uint8Array(), {
      globalArgs: ["--log-level", "debug"],
    });
    assert.equal(fast.code, 1, fast.stderr);
    assert.equal(cli.code, 1, cli.stderr);
    assert.doesNotMatch(cli.stderr, FAST);
    const error = "aztunnel: error: connection rejected (not_allowed): target not allowed";
    assert.equal(fast.stderr, `aztunnel: fast path: through agent\n${error}\n`);
    assert.equal(cli.stderr.trimEnd().split("\n").at(-1), error);
  });
});

Deno.test("fast connect: stdin sent before the agent's answer goes out as early data, exact", async () => {
  await using echo = startEchoServer();
  await withAgent(async (relay, runtime, agent) => {
    await warmUp(relay, runtime, agent, echo.addr);
    const data = pattern(1 << 20, 10);
    const res = await connect(relay, runtime, echo.addr, data);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stderr, FAST);
    assert.equal(sha256(res.stdout), sha256(data));
    // The tunnel took the early-data path. Whether the first bytes beat the listener's answer is a
    // race ("early data sent" logs only when they did), so that line is not waited for here;
    // tests/integration/agent_test.ts counts early bytes where the order is controlled.
    await agent.waitForLine(/msg="warm leg used".* early_data=true/);
  }, { agentGlobals: DEBUG });
});

Deno.test("fast connect: refused after early bytes: the CLI's error, exit 1, the canary untouched", async () => {
  await using echo = startEchoServer();
  await using canary = startCanary();
  await withAgent(async (relay, runtime, agent) => {
    await warmUp(relay, runtime, agent, echo.addr);
    const res = await connect(
      relay,
      runtime,
      canary.addr,
      new TextEncoder().encode("secret early bytes"),
    );
    assert.equal(res.code, 1, res.stderr);
    assert.equal(
      res.stderr,
      "aztunnel: fast path: through agent\n" +
        "aztunnel: error: connection rejected (not_allowed): target not allowed\n",
    );
    assert.equal(res.stdout.length, 0);
    await agent.waitForLine(/msg="warm leg used".* early_data=true/);
  }, { allow: [echo.addr], agentGlobals: DEBUG });
  assert.equal(canary.accepts, 0);
});

Deno.test("fast connect: no agent, debug logging or an unknown flag leave it to the CLI", async () => {
  await using echo = startEchoServer();
  const data = pattern(64 * 1024, 4);
  await using relay = await startRelayServer();
  await using _listener = await startListener(relay);
  await withRuntimeDir(async (runtime) => {
    const direct = await connect(relay, runtime, echo.addr, data, {
      globalArgs: ["--log-level", "debug"],
    });
    assert.equal(direct.code, 0, direct.stderr);
    assert.match(direct.stderr, /connecting directly.*reason="no agent"/);
    assert.doesNotMatch(direct.stderr, FAST);
    assert.equal(sha256(direct.stdout), sha256(data));

    const plain = await connect(relay, runtime, echo.addr, data);
    assert.equal(plain.code, 0, plain.stderr);
    // The direct path's own INFO line: the CLI ran, not the fast path.
    assert.match(plain.stderr, /msg="connection requested"/);
    assert.doesNotMatch(plain.stderr, FAST);
    assert.equal(sha256(plain.stdout), sha256(data));

    for (const args of [["--bogus"], ["--relay-insecure-tls"]]) {
      const res = await connect(relay, runtime, echo.addr, data, { args });
      assert.equal(res.code, 2, res.stderr);
      assert.doesNotMatch(res.stderr, FAST);
      assert.match(res.stderr, /^aztunnel: error: /);
    }
  });
});
