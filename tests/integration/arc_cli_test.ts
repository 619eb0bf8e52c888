/**
 * `aztunnel arc …` as a process: ARM tokens come from the real @azure/identity (managed identity via
 * the fake token endpoint), ARM is the fake ARM (which verifies those tokens), relay-server plays the
 * Arc relay (AZTUNNEL_ARC_RELAY_URL), the fake agent is the listener.
 */
import assert from "node:assert/strict";
import { randomKey } from "../../lib/server/policy.ts";
import { startRelayServer } from "../../lib/server/mod.ts";
import { type FakeArmOptions, startFakeArm } from "../helpers/fake_arm.ts";
import { startFakeArcAgent } from "../helpers/fake_arc_agent.ts";
import { startFakeTokenEndpoint } from "../helpers/fake_token_endpoint.ts";
import { cliArgv, run, runCli, spawnCli } from "../helpers/proc.ts";
import { readExactly, startEchoServer, writeAll } from "../helpers/servers.ts";
import { sshAvailable, startSshd } from "../helpers/sshd.ts";

const RID =
  "/subscriptions/00000000-0000-0000-0000-000000000002/resourceGroups/rg/providers/Microsoft.HybridCompute/machines/arc-vm";
const HC = "microsoft.hybridcompute/machines/6a1d2c3b-0000-4000-8000-000000000002";
const JWT_KEY = "arm-test-signing-key";
const KEY_NAME = "arc";

interface ArcWorld extends AsyncDisposable {
  arm: ReturnType<typeof startFakeArm>;
  tokens: ReturnType<typeof startFakeTokenEndpoint>;
  /** Environment of an `aztunnel arc` process. */
  env: Record<string, string>;
  /** `--resource-id … --arm-endpoint …`. */
  flags: string[];
}

async function arcWorld(armOpts: Partial<FakeArmOptions> = {}): Promise<ArcWorld> {
  const key = randomKey();
  const relay = await startRelayServer({
    bind: "127.0.0.1:0",
    policies: [{ name: KEY_NAME, key, rights: ["Listen", "Send"] }],
  });
  const tokens = startFakeTokenEndpoint({ jwtKey: JWT_KEY });
  const arm = startFakeArm({
    resourceId: RID,
    relay: {
      namespaceName: "azgnrelay-northeurope-l1",
      namespaceNameSuffix: "servicebus.windows.net",
      hybridConnectionName: HC,
      keyName: KEY_NAME,
      key,
    },
    jwtKey: JWT_KEY,
    ...armOpts,
  });
  const agent = startFakeArcAgent({
    relayUrl: relay.url,
    hybridConnectionName: HC,
    keyName: KEY_NAME,
    key,
    serviceConfigurationToken: arm.serviceConfigurationToken,
  });
  await agent.ready;
  return {
    arm,
    tokens,
    env: {
      ...tokens.env,
      AZTUNNEL_ARC_RELAY_URL: relay.url,
      // Arc never uses the relay SAS variables; make sure none leaks in from the runner.
      AZTUNNEL_KEY_NAME: "",
      AZTUNNEL_KEY: "",
      NO_PROXY: "127.0.0.1,localhost",
      no_proxy: "127.0.0.1,localhost",
    },
    flags: ["--resource-id", RID, "--arm-endpoint", arm.url],
    async [Symbol.asyncDispose]() {
      await agent.close();
      await relay.close();
      await arm.close();
      await tokens.close();
    },
  };
}

/** Single-quotes a word for the shell ssh runs a ProxyCommand with. */
const shq = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

Deno.test({
  name: "arc connect as ssh ProxyCommand runs a command on the machine",
  ignore: !sshAvailable,
  async fn() {
    await using world = await arcWorld();
    await using sshd = await startSshd();
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
  await using world = await arcWorld();
  const echo = startEchoServer();
  try {
    await using pf = spawnCli(
      [
        "--log-level",
        "debug",
        "arc",
        "port-forward",
        ...world.flags,
        "--port",
        String(echo.port),
        "-b",
        "127.0.0.1:0",
      ],
      { env: world.env, name: "arc port-forward" },
    );
    const m = await pf.waitForLine(
      /msg="arc port-forward listening" bind=(\S+) resource=(\S+) port=(\d+)/,
      30_000,
    );
    assert.equal(m[2], RID);
    assert.equal(Number(m[3]), echo.port);
    const port = Number(m[1].slice(m[1].lastIndexOf(":") + 1));
    const roundTrip = async (text: string) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        await writeAll(conn, new TextEncoder().encode(text));
        return new TextDecoder().decode(await readExactly(conn, text.length));
      } finally {
        conn.close();
      }
    };
    assert.deepEqual(await Promise.all([roundTrip("one"), roundTrip("two")]), ["one", "two"]);
    assert.equal(world.arm.count("list"), 1);
    assert.equal(world.tokens.requests.length, 1);
    assert.equal(world.tokens.requests[0].resource, world.arm.url);
    assert.ok(!pf.stderr.includes("SharedAccessSignature"), "accessKey in the logs");
    assert.ok(!pf.stderr.includes(world.arm.serviceConfigurationToken), "token in the logs");
  } finally {
    await echo.close();
  }
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
