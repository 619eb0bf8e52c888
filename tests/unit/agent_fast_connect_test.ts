import assert from "node:assert/strict";
import type { Option } from "@commander-js/extra-typings";
import { buildProgram } from "../../cmd/root.ts";
import {
  CONNECT_FLAGS,
  type ConnectLine,
  fastConnect,
  GLOBAL_FLAGS,
  parseConnectLine,
  planConnect,
} from "../../lib/agent/fast_connect.ts";
import { agentPaths } from "../../lib/agent/paths.ts";
import { ensurePrivateDir } from "../../lib/agent/private_dir.ts";
import { AgentRefused, parseRequest, readLine } from "../../lib/agent/protocol.ts";
import { LOG_FORMATS, LOG_LEVELS } from "../../lib/observe/log.ts";
import { parseRelayEndpoint } from "../../lib/relay/endpoint.ts";
import { pattern, sha256 } from "../helpers/bytes.ts";
import { readAll, tcpPair, writeAll } from "../helpers/servers.ts";

const uid = Deno.uid() ?? 0;
const env = (vars: Record<string, string> = {}) => new Map(Object.entries(vars));
const RELAY = ["--relay", "ws://127.0.0.1:9", "--hyco", "hc"];
const connect = (...rest: string[]) => ["relay-sender", "connect", ...RELAY, ...rest, "db:22"];

Deno.test("parseConnectLine: globals anywhere, `=` values, the environment filled in", () => {
  const line = parseConnectLine(
    [
      "--log-format=JSON",
      "relay-sender",
      "--log-level",
      "warn",
      "connect",
      "--persist",
      "5m",
      "h:1",
    ],
    env({ AZTUNNEL_RELAY_NAME: "ns", AZTUNNEL_HYCO_NAME: "hc", AZTUNNEL_HALF_CLOSE_LINGER: "1s" }),
  );
  assert.deepEqual(line, {
    target: "h:1",
    flags: { relay: "ns", hyco: "hc", halfCloseLinger: "1s", persist: "5m" },
    cli: new Set(["persist"]),
  });
  assert.deepEqual(
    parseConnectLine(connect("--namespace=x"), env())?.cli,
    new Set(["relay", "hyco", "namespace"]),
  );
});

Deno.test("parseConnectLine: anything it does not fully understand is the CLI's", () => {
  const refused = [
    connect("--help"),
    connect("-h"),
    connect("--relay-insecure-tls"),
    connect("--bogus", "x"),
    connect("--hyco", "twice"),
    connect("--"),
    [...connect(), "extra"],
    ["relay-sender", "connect", ...RELAY],
    ["relay-sender", "port-forward", ...RELAY, "db:22"],
    ["relay-sender", "--hyco", "hc", "connect", "--relay", "r", "db:22"],
    ["--log-level", "debug", ...connect()],
    ["--log-level", "loud", ...connect()],
    ["--log-format", "xml", ...connect()],
    ["--metrics-addr", "127.0.0.1:0", ...connect()],
    ["--version"],
    [...connect(), "--persist"],
  ];
  for (const args of refused) assert.equal(parseConnectLine(args, env()), null, args.join(" "));
  assert.ok(parseConnectLine(["--log-level", " ERROR", ...connect()], env()));
});

Deno.test("fast path flags: the CLI's connect flags and env vars; any new one must be taught here", () => {
  const program = buildProgram();
  const sender = program.commands.find((c) => c.name() === "relay-sender");
  const cmd = sender?.commands.find((c) => c.name() === "connect");
  assert.ok(cmd);
  // Left to the CLI on purpose: it refuses them, or the fast path does not serve them.
  const fallThrough = new Set(["--relay-insecure-tls", "--help", "--version"]);
  const options = cmd.options as readonly Option[];
  for (const o of options) {
    if (fallThrough.has(o.long ?? "")) continue;
    const flag = CONNECT_FLAGS[o.long ?? ""];
    assert.ok(flag, `${o.long}: unknown to lib/agent/fast_connect.ts`);
    assert.equal(flag.key, o.attributeName());
    assert.equal(flag.env, o.envVar, o.long);
  }
  assert.deepEqual(
    Object.keys(CONNECT_FLAGS).sort(),
    options.map((o) => o.long).filter((l) => !fallThrough.has(l ?? "")).sort(),
  );
  for (const o of program.options as readonly Option[]) {
    const allowed = GLOBAL_FLAGS[o.long ?? ""];
    if (!allowed) continue;
    assert.equal(o.envVar, undefined, o.long);
    for (const v of allowed) assert.ok([...LOG_LEVELS, ...LOG_FORMATS].includes(v as never), v);
  }
});

const line = (flags: ConnectLine["flags"], cli: string[] = [], target = "db:22"): ConnectLine => ({
  target,
  flags,
  cli: new Set(cli) as ConnectLine["cli"],
});

Deno.test("planConnect: the CLI's precedence picks the relay, whose socket it names", async () => {
  const vars = env({ XDG_RUNTIME_DIR: "/run/u", AZTUNNEL_KEY_NAME: "k", AZTUNNEL_KEY: "v" });
  // --namespace on the command line beats AZTUNNEL_RELAY_NAME.
  const plan = await planConnect(
    line({ relay: "from-env", namespace: "ns", hyco: "hc" }, ["namespace", "hyco"], "fe80::1:22"),
    vars,
    uid,
  );
  const expected = await agentPaths(parseRelayEndpoint("ns"), "hc", vars, uid);
  assert.deepEqual(plan, { target: "[fe80::1]:22", paths: expected });
});

Deno.test("planConnect: null wherever the CLI would refuse the line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const notPem = `${dir}/ca.txt`;
    await Deno.writeTextFile(notPem, "hello");
    const ok = { relay: "ws://127.0.0.1:9", hyco: "hc" };
    const cases: [ConnectLine, Record<string, string>][] = [
      [line(ok, [], "no-port"), {}],
      [line({ ...ok, halfCloseLinger: "soon" }), {}],
      [line({ ...ok, persist: "later" }), {}],
      [line({ relay: "r" }), {}],
      [line({ hyco: "hc" }), {}],
      [line({ ...ok, hyco: "a/../b" }), {}],
      [line({ ...ok, relay: "ftp://x" }), {}],
      [line({ ...ok, relayCaCert: `${dir}/missing.pem` }), {}],
      [line({ ...ok, relayCaCert: notPem }), {}],
      [line(ok), { AZTUNNEL_RELAY_INSECURE_TLS: "1" }],
      [line(ok), { AZTUNNEL_KEY_NAME: "only-the-name" }],
      [line(ok), { TMPDIR: `/${"x".repeat(120)}` }],
    ];
    for (const [l, vars] of cases) {
      assert.equal(await planConnect(l, env(vars), uid), null, JSON.stringify([l.flags, vars]));
    }
    assert.ok(await planConnect(line(ok), env({ TMPDIR: dir }), uid));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A stand-in agent on the socket `args` name: answers the first request with `serve`. */
async function withFakeAgent(
  args: string[],
  serve: (conn: Deno.UnixConn, target: string) => Promise<void>,
  test: (vars: Map<string, string>) => Promise<void>,
) {
  const runtime = await Deno.makeTempDir({ prefix: "fast-connect-" });
  const vars = env({ XDG_RUNTIME_DIR: runtime });
  try {
    const plan = await planConnect(parseConnectLine(args, vars)!, vars, uid);
    assert.ok(plan);
    await ensurePrivateDir(plan.paths.dir, uid);
    using listener = Deno.listen({ transport: "unix", path: plan.paths.socket });
    const served = (async () => {
      const conn = await listener.accept();
      try {
        const line = await readLine(conn);
        await serve(conn, line ? parseRequest(line.line).target : "");
      } finally {
        conn.close();
      }
    })();
    await test(vars);
    await served;
  } finally {
    await Deno.remove(runtime, { recursive: true });
  }
}

const noStop = () => ({ signal: new AbortController().signal, dispose() {} });

Deno.test("fastConnect: bytes through the agent, exact both ways, with half-close", async () => {
  const data = pattern(300 * 1024, 5);
  await withFakeAgent(connect(), async (conn, target) => {
    assert.equal(target, "db:22");
    await writeAll(conn, new TextEncoder().encode("OK\n"));
    // Echo after the client's EOF: only a half-close lets the reply through.
    const got = await readAll(conn);
    await writeAll(conn, got);
    await conn.closeWrite();
  }, async (vars) => {
    const [local, peer] = await tcpPair();
    const run = fastConnect(connect(), { env: vars, uid, stop: noStop, local: () => local });
    await writeAll(peer, data);
    await peer.closeWrite();
    assert.equal(sha256(await readAll(peer)), sha256(data));
    assert.equal(await run, true);
    peer.close();
  });
});

Deno.test("fastConnect: the agent's refusal is thrown as connect through it throws it", async () => {
  await withFakeAgent(connect(), async (conn) => {
    await writeAll(conn, new TextEncoder().encode("ERR not_allowed target not allowed\n"));
  }, async (vars) => {
    await assert.rejects(
      fastConnect(connect(), { env: vars, uid, stop: noStop, local: () => assert.fail() }),
      (err: Error) => err instanceof AgentRefused && err.code === "not_allowed",
    );
  });
});

Deno.test("fastConnect: false without an agent, for an agent that hangs up, and for unknown flags", async () => {
  const runtime = await Deno.makeTempDir({ prefix: "fast-connect-" });
  const vars = env({ XDG_RUNTIME_DIR: runtime });
  const opts = { env: vars, uid, stop: noStop, local: () => assert.fail("no local end") };
  try {
    assert.equal(await fastConnect(connect(), opts), false);
    assert.equal(await fastConnect(connect("--bogus"), opts), false);
  } finally {
    await Deno.remove(runtime, { recursive: true });
  }
  await withFakeAgent(connect(), async () => {}, async (vars) => {
    assert.equal(await fastConnect(connect(), { ...opts, env: vars }), false);
  });
});
