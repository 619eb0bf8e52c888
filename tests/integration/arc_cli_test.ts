/**
 * `aztunnel arc …` as a process: ARM tokens come from the real @azure/identity (managed identity via
 * the fake token endpoint), ARM is the fake ARM (which verifies those tokens), relay-server plays the
 * Arc relay (AZTUNNEL_ARC_RELAY_URL), the fake agent is the listener.
 */
import assert from "node:assert/strict";
import { startArcStack } from "../helpers/arc_stack.ts";
import { makeTestCerts, opensslAvailable, type TestCerts } from "../helpers/certs.ts";
import type { FakeArm, FakeArmOptions } from "../helpers/fake_arm.ts";
import { startFakeTokenEndpoint } from "../helpers/fake_token_endpoint.ts";
import { cliArgv, type Proc, run, runCli, spawnCli } from "../helpers/proc.ts";
import { echoOnce, startEchoServer } from "../helpers/servers.ts";
import { sshAvailable, startSshd } from "../helpers/sshd.ts";

const RID =
  "/subscriptions/00000000-0000-0000-0000-000000000002/resourceGroups/rg/providers/Microsoft.HybridCompute/machines/arc-vm";
const HC = "microsoft.hybridcompute/machines/6a1d2c3b-0000-4000-8000-000000000002";
const JWT_KEY = "arm-test-signing-key";

interface ArcWorld extends AsyncDisposable {
  arm: FakeArm;
  tokens: ReturnType<typeof startFakeTokenEndpoint>;
  /** Environment of an `aztunnel arc` process. */
  env: Record<string, string>;
  /** `--resource-id … --arm-endpoint …`. */
  flags: string[];
}

async function arcWorld(
  armOpts: Partial<FakeArmOptions> = {},
  tls?: TestCerts,
): Promise<ArcWorld> {
  const stack = await startArcStack({
    resourceId: RID,
    hybridConnectionName: HC,
    keyName: "arc",
    namespaceName: "azgnrelay-northeurope-l1",
    arm: { jwtKey: JWT_KEY, ...armOpts },
    tls,
  });
  const tokens = startFakeTokenEndpoint({ jwtKey: JWT_KEY });
  return {
    arm: stack.arm,
    tokens,
    env: {
      ...tokens.env,
      AZTUNNEL_ARC_RELAY_URL: stack.relayUrl,
      // Arc never uses the relay SAS variables; make sure none leaks in from the runner.
      AZTUNNEL_KEY_NAME: "",
      AZTUNNEL_KEY: "",
      NO_PROXY: "127.0.0.1,localhost",
      no_proxy: "127.0.0.1,localhost",
    },
    flags: ["--resource-id", RID, "--arm-endpoint", stack.arm.url],
    async [Symbol.asyncDispose]() {
      await stack[Symbol.asyncDispose]();
      await tokens.close();
    },
  };
}

/** Sends `text` through the forwarded port and returns what came back ("" when the tunnel closed). */
function roundTripText(port: number, text: string): Promise<string> {
  return echoOnce(port, text).catch(() => "");
}

function boundPort(m: RegExpMatchArray): number {
  return Number(m[1].slice(m[1].lastIndexOf(":") + 1));
}

const LISTENING = /msg="arc port-forward listening" bind=(\S+) resource=(\S+) port=(\d+)/;

/** `aztunnel --log-level debug arc port-forward <world flags> <args> -b 127.0.0.1:0`. */
function spawnArcForward(world: ArcWorld, args: string[], name: string): Proc {
  return spawnCli(
    ["--log-level", "debug", "arc", "port-forward", ...world.flags, ...args, "-b", "127.0.0.1:0"],
    { env: world.env, name },
  );
}

/** Single-quotes a word for the shell ssh runs a ProxyCommand with. */
const shq = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

Deno.test({
  name: "arc connect as ssh ProxyCommand runs a command on the machine",
  ignore: !sshAvailable,
  async fn() {
    await using sshd = await startSshd();
    await using world = await arcWorld({ serviceConfigs: { SSH: sshd.port } });
    const proxy = [
      Deno.execPath(),
      ...cliArgv(["arc", "connect", ...world.flags, "--port", String(sshd.port)]),
    ]
      .map(shq).join(" ");
    const r = await run("ssh", [
      ...sshd.clientOptions,
      "-o",
      `ProxyCommand=${proxy}`,
      `${sshd.user}@arc-vm`,
      "echo hello-over-arc; uname -s",
    ], { env: world.env, deadlineMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.text, /^hello-over-arc\nLinux\n$/);
    assert.equal(world.arm.count("list"), 1);
    assert.ok(world.tokens.requests.every((t) => t.resource === world.arm.url));
    assert.ok(!r.stderr.includes("SharedAccessSignature"));
  },
});

Deno.test("arc port-forward (CLI): two concurrent connections, one ARM call, Entra ARM token", async () => {
  await using echo = startEchoServer();
  await using world = await arcWorld({ serviceConfigs: { SSH: echo.port } });
  await using pf = spawnArcForward(world, ["--port", String(echo.port)], "arc port-forward");
  const m = await pf.waitForLine(LISTENING, 30_000);
  assert.equal(m[2], RID);
  assert.equal(Number(m[3]), echo.port);
  const port = boundPort(m);
  assert.deepEqual(await Promise.all([roundTripText(port, "one"), roundTripText(port, "two")]), [
    "one",
    "two",
  ]);
  assert.deepEqual(world.arm.calls.map((c) => c.op), ["list", "getServiceConfig"]);
  assert.equal(world.tokens.requests.length, 1);
  assert.equal(world.tokens.requests[0].resource, world.arm.url);
  assert.ok(!pf.stderr.includes("SharedAccessSignature"), "accessKey in the logs");
  assert.ok(!pf.stderr.includes(world.arm.serviceConfigurationToken), "token in the logs");
});

Deno.test({
  name: "arc port-forward (CLI): --relay-ca-cert trusts a private CA for the Arc relay dial",
  ignore: !opensslAvailable,
  async fn() {
    await using certs = await makeTestCerts();
    await using echo = startEchoServer();
    await using world = await arcWorld({}, certs);
    assert.match(world.env.AZTUNNEL_ARC_RELAY_URL, /^wss:/);
    const port = ["--port", String(echo.port)];
    {
      await using untrusted = spawnArcForward(world, port, "untrusted");
      const bound = boundPort(await untrusted.waitForLine(LISTENING, 30_000));
      assert.equal(await roundTripText(bound, "refused"), "");
      await untrusted.waitForLine(/msg="forward failed"/);
    }
    await using trusted = spawnArcForward(
      world,
      [...port, "--relay-ca-cert", certs.caFile],
      "trusted",
    );
    const bound = boundPort(await trusted.waitForLine(LISTENING, 30_000));
    assert.equal(await roundTripText(bound, "over wss"), "over wss");
  },
});

Deno.test("arc connect (CLI): a 403 is one explained line, exit 1", async () => {
  await using world = await arcWorld({
    failures: {
      list: {
        status: 403,
        code: "AuthorizationFailed",
        message: "The client does not have authorization to perform action " +
          "'Microsoft.HybridConnectivity/endpoints/listCredentials/action'.",
      },
    },
  });
  const r = await runCli(["arc", "connect", ...world.flags], { env: world.env, stdin: "" });
  assert.equal(r.code, 1, r.stderr);
  const errors = r.stderr.split("\n").filter((l) => l.startsWith("aztunnel: error:"));
  assert.equal(errors.length, 1, r.stderr);
  assert.match(
    errors[0],
    /^aztunnel: error: list credentials: ARM API error \(HTTP 403\): AuthorizationFailed: /,
  );
  assert.match(errors[0], /listCredentials\/action/);
  assert.ok(!/^\s+at /m.test(r.stderr));
  assert.equal(world.arm.count("putEndpoint"), 0);
});

Deno.test("arc (CLI): bad flags are usage errors (exit 2)", async () => {
  const rid = ["--resource-id", RID];
  const cases: Array<[string[], RegExp, Record<string, string>?]> = [
    [["arc", "connect", ...rid, "--service", "RDP"], /invalid --service "RDP": must be SSH or WAC/],
    [
      ["arc", "connect"],
      /resource ID is required: use --resource-id or set AZTUNNEL_ARC_RESOURCE_ID/,
    ],
    [["arc", "connect", ...rid, "--arm-endpoint", "http://arm.example"], /only for loopback hosts/],
    [["arc", "port-forward", ...rid, "--port", "0"], /invalid --port "0"/],
    [["arc", "connect", ...rid], /invalid AZTUNNEL_ARC_RELAY_URL/, {
      AZTUNNEL_ARC_RELAY_URL: "http://x",
    }],
  ];
  for (const [args, re, env] of cases) {
    const r = await runCli(args, { env: { AZTUNNEL_ARC_RESOURCE_ID: "", ...env }, stdin: "" });
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
});

Deno.test("arc port-forward (CLI): --service WAC without --port configures and targets 6516", async () => {
  await using world = await arcWorld();
  await using pf = spawnArcForward(world, ["--service", "WAC"], "arc port-forward WAC");
  const m = await pf.waitForLine(LISTENING, 30_000);
  assert.equal(Number(m[3]), 6516);
  // The fake ARM had only SSH configured: the 412 led to the service configuration PUT alone.
  assert.deepEqual(world.arm.calls.map((c) => c.op), ["list", "putServiceConfig", "list"]);
  assert.equal(world.arm.serviceConfigs.get("WAC"), 6516);
  const put = world.arm.calls.find((c) => c.op === "putServiceConfig");
  assert.deepEqual(put?.body, { properties: { serviceName: "WAC", port: 6516 } });
});

/**
 * The `tr` (timer) column of the /proc/net/tcp row for local port `local` and remote port
 * `remote`: "02" while the keepalive timer is armed on an idle established socket, "00" without.
 */
function tcpTimer(local: number, remote: number): string | undefined {
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(4, "0");
  for (const line of Deno.readTextFileSync("/proc/net/tcp").split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f[1]?.endsWith(`:${hex(local)}`) && f[2]?.endsWith(`:${hex(remote)}`)) {
      return f[5]?.split(":")[0];
    }
  }
  return undefined;
}

Deno.test({
  name: "arc port-forward (CLI): --tcp-keepalive 0 leaves TCP keepalive on, as Go's default did",
  ignore: Deno.build.os !== "linux",
  async fn() {
    await using world = await arcWorld();
    await using echo = startEchoServer();
    await using pf = spawnArcForward(
      world,
      ["--port", String(echo.port), "--tcp-keepalive", "0"],
      "arc port-forward keepalive 0",
    );
    const port = boundPort(await pf.waitForLine(LISTENING, 30_000));
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      // Logged right after the accepted socket's options were set; nothing has been written to
      // it, so no retransmit timer can hide the keepalive timer.
      await pf.waitForLine(/msg="connection requested"/, 30_000);
      assert.equal(tcpTimer(port, (conn.localAddr as Deno.NetAddr).port), "02");
    } finally {
      conn.close();
    }
  },
});
