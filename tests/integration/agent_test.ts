/**
 * `relay-sender agent` and connect's hand-off to it: in-process over the local relay (byte-exact
 * tunnels, half-close, refusals, idle exit), then as real processes (connect without an agent,
 * `--persist` starting one that serves the next connect, SIGTERM removing the socket).
 */
import assert from "node:assert/strict";
import { dialAgent, requestTunnel } from "../../lib/agent/client.ts";
import { handOff } from "../../lib/agent/handoff.ts";
import { type AgentPaths, agentPaths } from "../../lib/agent/paths.ts";
import { AgentRefused } from "../../lib/agent/protocol.ts";
import { type AgentOptions, runAgent } from "../../lib/agent/server.ts";
import { getLogger } from "../../lib/observe/log.ts";
import { parseRelayEndpoint } from "../../lib/relay/endpoint.ts";
import type { SenderRelayConfig } from "../../lib/sender/open_tunnel.ts";
import { TunnelSource } from "../../lib/sender/tunnel_source.ts";
import { parseAllowlist } from "../../lib/tunnel/allowlist.ts";
import type { ByteStream } from "../../lib/tunnel/bridge.ts";
import { spliceToAgent } from "../../lib/agent/splice.ts";
import { pattern, sha256 } from "../helpers/bytes.ts";
import { PoolRecorder } from "../helpers/pool_recorder.ts";
import {
  connectArgs,
  logAttr,
  runCli,
  startListener,
  startRelayServer,
  withDeadline,
} from "../helpers/proc.ts";
import { readAll, startCanary, startEchoServer, tcpPair, writeAll } from "../helpers/servers.ts";
import {
  dec,
  enc,
  type Stack,
  startStack,
  startTarget,
  upperEcho,
} from "../helpers/tunnel_stack.ts";

const uid = Deno.uid() ?? 0;
const logger = getLogger({ side: "connect" });

async function withRuntimeDir<T>(fn: (runtime: string) => Promise<T>): Promise<T> {
  const runtime = await Deno.makeTempDir({ prefix: "agent-it-" });
  try {
    return await fn(runtime);
  } finally {
    await Deno.remove(runtime, { recursive: true });
  }
}

const pathsFor = (relay: SenderRelayConfig, runtime: string) =>
  agentPaths(relay.endpoint, relay.entity, new Map([["XDG_RUNTIME_DIR", runtime]]), uid);

interface RunningAgent extends AsyncDisposable {
  paths: AgentPaths;
  /** Resolves when runAgent returned. */
  done: Promise<void>;
}

/** runAgent for the stack's relay under `runtime`, listening once this resolves. */
async function startAgent(
  stack: Stack,
  runtime: string,
  extra: Partial<AgentOptions> = {},
): Promise<RunningAgent> {
  const paths = await pathsFor(stack.relay, runtime);
  const ac = new AbortController();
  const listening = Promise.withResolvers<void>();
  const agentLogger = getLogger({ side: "agent" });
  const done = runAgent({
    paths,
    opener: new TunnelSource({ relay: stack.relay, logger: agentLogger }),
    signal: ac.signal,
    drainTimeoutMs: 5_000,
    idleExitMs: 0,
    logger: agentLogger,
    uid,
    onListening: () => listening.resolve(),
    ...extra,
  });
  done.catch((err) => listening.reject(err));
  await listening.promise;
  return {
    paths,
    done,
    [Symbol.asyncDispose]: () => {
      ac.abort();
      return done;
    },
  };
}

/** connect's hand-off with `local` as its stdio. */
const connectVia = (paths: AgentPaths, target: string, local: ByteStream) =>
  handOff({ paths, target, uid, logger, local: () => local });

Deno.test("agent: connect through it is byte-exact both ways, twice on one agent", async () => {
  await using target = startEchoServer();
  await using stack = await startStack({});
  await withRuntimeDir(async (runtime) => {
    await using agent = await startAgent(stack, runtime);
    for (const seed of [1, 2]) {
      const [user, local] = await tcpPair();
      const handed = connectVia(agent.paths, target.addr, local);
      const data = pattern(1 << 20, seed);
      const sending = writeAll(user, data).then(() => user.closeWrite());
      const back = await readAll(user);
      await sending;
      assert.equal(back.length, data.length);
      assert.equal(sha256(back), sha256(data));
      assert.equal(await handed, true);
      user.close();
    }
    await stack.logs.waitFor([/connecting through agent/, new RegExp(`target=${target.addr}`)]);
    assert.equal(stack.logs.count(/listener accepted connection/), 2);
  });
});

Deno.test("agent: half-close reaches the target and its reply still comes back", async () => {
  await using target = startTarget(upperEcho);
  await using stack = await startStack({});
  await withRuntimeDir(async (runtime) => {
    await using agent = await startAgent(stack, runtime);
    const [user, local] = await tcpPair();
    const handed = connectVia(agent.paths, target.addr, local);
    await writeAll(user, enc.encode("ssh-ish request"));
    await user.closeWrite();
    assert.equal(dec.decode(await readAll(user)), "SSH-ISH REQUEST<end>");
    assert.equal(await handed, true);
    user.close();
  });
});

Deno.test("agent: a refusal reaches connect with the listener's code", async () => {
  await using stack = await startStack({ allowlist: parseAllowlist(["127.0.0.1:1"]) });
  await withRuntimeDir(async (runtime) => {
    await using agent = await startAgent(stack, runtime);
    const [user, local] = await tcpPair();
    await assert.rejects(connectVia(agent.paths, "10.0.0.5:22", local), (err: Error) => {
      assert.ok(err instanceof AgentRefused);
      assert.equal(err.code, "not_allowed");
      assert.equal(err.message, "connection rejected (not_allowed): target not allowed");
      return true;
    });
    local.close();
    user.close();
  });
});

/** An agent on the stack's relay with warm legs (as cmd/agent.ts runs it), one leg ready. */
async function startWarmAgent(stack: Stack, runtime: string, warmUpTarget: string) {
  const pool = new PoolRecorder();
  const source = new TunnelSource({
    relay: stack.relay,
    logger: getLogger({ side: "agent" }),
    pool: { min: 1, max: 2 },
    metrics: pool,
  });
  const agent = await startAgent(stack, runtime, { opener: source });
  // The first tunnel is cold: it shows the listener grants warm legs and early data.
  const [user, local] = await tcpPair();
  const handed = connectVia(agent.paths, warmUpTarget, local);
  await user.closeWrite();
  await readAll(user);
  await handed;
  user.close();
  await pool.until((r) => r.ready >= 1, "a warm leg");
  return {
    paths: agent.paths,
    pool,
    [Symbol.asyncDispose]: async () => {
      await agent[Symbol.asyncDispose]();
      await source.close();
    },
  };
}

Deno.test("agent: early data on a warm leg: 1 MiB sent before OK, byte-exact both ways", async () => {
  await using target = startEchoServer();
  await using stack = await startStack({});
  await withRuntimeDir(async (runtime) => {
    await using agent = await startWarmAgent(stack, runtime, target.addr);
    const [user, local] = await tcpPair();
    const data = pattern(1 << 20, 6);
    // Written, EOF included, before connect has its answer.
    const sending = writeAll(user, data).then(() => user.closeWrite());
    const handed = connectVia(agent.paths, target.addr, local);
    const back = await readAll(user);
    await sending;
    assert.equal(sha256(back), sha256(data));
    assert.equal(await handed, true);
    assert.equal(agent.pool.hits, 1);
    assert.ok(agent.pool.earlyBytes > 0, "bytes went out with the envelope");
    assert.match(stack.logs.lines.join(""), /msg="warm leg used".* early_data=true/);
    user.close();
  });
});

Deno.test("agent: stdin's EOF before the answer reaches the target after it (warm leg)", async () => {
  await using target = startTarget(upperEcho);
  await using stack = await startStack({});
  await withRuntimeDir(async (runtime) => {
    await using agent = await startWarmAgent(stack, runtime, target.addr);
    const [user, local] = await tcpPair();
    await writeAll(user, enc.encode("ssh-ish request"));
    await user.closeWrite();
    const handed = connectVia(agent.paths, target.addr, local);
    assert.equal(dec.decode(await readAll(user)), "SSH-ISH REQUEST<end>");
    assert.equal(await handed, true);
    assert.equal(agent.pool.earlyBytes, "ssh-ish request".length);
    user.close();
  });
});

Deno.test("agent: ERR after early bytes: connect throws, the canary target gets nothing", async () => {
  await using allowed = startEchoServer();
  await using canary = startCanary();
  await using stack = await startStack({ allowlist: parseAllowlist([allowed.addr]) });
  await withRuntimeDir(async (runtime) => {
    await using agent = await startWarmAgent(stack, runtime, allowed.addr);
    const [user, local] = await tcpPair();
    await writeAll(user, enc.encode("secret early bytes"));
    await assert.rejects(
      connectVia(agent.paths, canary.addr, local),
      (err: Error) => err instanceof AgentRefused && err.code === "not_allowed",
    );
    assert.match(stack.logs.lines.join(""), /msg="warm leg used".* early_data=true/);
    local.close();
    assert.equal((await readAll(user)).length, 0, "stdout got nothing");
    assert.equal(agent.pool.earlyBytes, 0, "nothing counted as delivered");
    user.close();
  });
  assert.equal(canary.accepts, 0);
});

Deno.test("agent: a client of the older protocol (OK before any data) is served as before", async () => {
  await using target = startEchoServer();
  await using stack = await startStack({});
  await withRuntimeDir(async (runtime) => {
    await using agent = await startWarmAgent(stack, runtime, target.addr);
    const conn = await dialAgent(agent.paths, uid);
    assert.ok(conn);
    const head = await requestTunnel(conn, target.addr);
    assert.ok(head);
    const [user, local] = await tcpPair();
    const spliced = spliceToAgent(local, conn, head);
    const data = pattern(256 * 1024, 8);
    const sending = writeAll(user, data).then(() => user.closeWrite());
    assert.equal(sha256(await readAll(user)), sha256(data));
    await sending;
    await spliced;
    user.close();
  });
});

Deno.test("agent: without one, connect is told to take the direct path", async () => {
  await using stack = await startStack({});
  await withRuntimeDir(async (runtime) => {
    const paths = await pathsFor(stack.relay, runtime);
    const [user, local] = await tcpPair();
    assert.equal(await connectVia(paths, "127.0.0.1:1", local), false);
    await stack.logs.waitFor([/connecting directly/, /reason="no agent"/]);
    local.close();
    user.close();
  });
});

Deno.test("agent: --idle-exit stops it once the last connection has been idle that long", async () => {
  await using target = startEchoServer();
  await using stack = await startStack({});
  await withRuntimeDir(async (runtime) => {
    const agent = await startAgent(stack, runtime, { idleExitMs: 300 });
    const [user, local] = await tcpPair();
    const handed = connectVia(agent.paths, target.addr, local);
    await writeAll(user, enc.encode("ping"));
    await user.closeWrite();
    assert.equal(dec.decode(await readAll(user)), "ping");
    await handed;
    user.close();
    const ended = performance.now();
    await withDeadline(agent.done, 10_000, "idle exit");
    assert.ok(performance.now() - ended >= 250, "idle is counted from the last connection's end");
    await stack.logs.waitFor([/agent idle, exiting/, /idle=300ms/]);
    await assert.rejects(Deno.lstat(agent.paths.socket), Deno.errors.NotFound);
  });
});

Deno.test("agent CLI: connect without an agent, then --persist starts one that serves the next", async () => {
  await using target = startEchoServer();
  await using relay = await startRelayServer();
  await using _listener = await startListener(relay);
  await withRuntimeDir(async (runtime) => {
    const env = { ...relay.env, XDG_RUNTIME_DIR: runtime };
    const connect = (args: string[], data: Uint8Array) =>
      runCli(connectArgs(relay, target.addr, { globalArgs: ["--log-level", "debug"], args }), {
        env,
        stdin: data,
      });
    const check = (res: Awaited<ReturnType<typeof connect>>, data: Uint8Array, path: RegExp) => {
      assert.equal(res.code, 0, res.stderr);
      assert.equal(sha256(res.stdout), sha256(data));
      assert.match(res.stderr, path);
    };

    const data = pattern(256 * 1024, 3);
    check(await connect([], data), data, /connecting directly.*reason="no agent"/);

    const first = await connect(["--persist", "30s"], data);
    check(first, data, /connecting through agent/);
    const started = first.stderr.split("\n").find((l) => /agent started/.test(l)) ?? "";
    const pid = Number(logAttr(started, "pid"));
    assert.ok(pid > 0, first.stderr);

    const paths = await agentPaths(
      parseRelayEndpoint(relay.url),
      "e2e",
      new Map([["XDG_RUNTIME_DIR", runtime]]),
      uid,
    );
    await using lock = await Deno.open(paths.lock, { read: true, write: true });
    try {
      const second = await connect([], data);
      check(second, data, /connecting through agent/);
      assert.doesNotMatch(second.stderr, /agent started/);
      assert.equal((await Deno.lstat(paths.socket)).mode! & 0o777, 0o600);
    } finally {
      // SIGTERM: the agent stops, removes its socket and lets go of the lock.
      Deno.kill(pid, "SIGTERM");
    }
    await withDeadline(lock.lock(true), 20_000, "agent exit");
    await lock.unlock();
    await assert.rejects(Deno.lstat(paths.socket), Deno.errors.NotFound);
  });
});
