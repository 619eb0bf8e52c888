/**
 * Sender start-up as a user meets it (issue 11): the start line names the auth, an Entra sender
 * without a working credential fails before it listens, a wrong key is an ERROR naming the relay,
 * the hyco and the fix, and a wait on the relay is reported under `--log-level warn`.
 */
import assert from "node:assert/strict";
import { startFakeTokenEndpoint } from "../helpers/fake_token_endpoint.ts";
import {
  connectArgs,
  runCli,
  spawnCli,
  startPortForward,
  startRelayServer,
} from "../helpers/proc.ts";

/** The fake managed identity, and empty SAS variables so a key in the runner's own environment cannot win. */
function entraEnv(fake: ReturnType<typeof startFakeTokenEndpoint>): Record<string, string> {
  return {
    ...fake.env,
    AZTUNNEL_KEY_NAME: "",
    AZTUNNEL_KEY: "",
    // No az, azd or pwsh to fall back to.
    PATH: "/nonexistent",
    NO_PROXY: "127.0.0.1,localhost",
    no_proxy: "127.0.0.1,localhost",
  };
}

const RELAY = ["--relay", "ws://127.0.0.1:9", "--hyco", "hc"];

Deno.test("sender start-up: Entra without a working credential exits 1 before listening", async () => {
  const fake = startFakeTokenEndpoint({ jwtKey: "k" });
  fake.setMode({ kind: "error", status: 400 });
  try {
    for (const mode of [["port-forward", "127.0.0.1:22"], ["socks5-proxy"], ["http-proxy"]]) {
      const r = await runCli(["relay-sender", ...mode, ...RELAY, "-b", "127.0.0.1:0"], {
        env: entraEnv(fake),
      });
      assert.equal(r.code, 1, r.stderr);
      assert.doesNotMatch(r.stderr, /listening/, mode[0]);
      const lines = r.stderr.trim().split("\n");
      assert.equal(lines.length, 1, r.stderr);
      assert.match(
        lines[0],
        /^aztunnel: error: Entra ID authentication failed: no credential could get a token for https:\/\/relay\.azure\.net\/\.default \(tried: .*managed identity: invalid_request: fake token endpoint failure.*\); to fix: set AZTUNNEL_KEY_NAME and AZTUNNEL_KEY .*"Azure Relay Sender" \(relay-sender\) role/,
      );
    }
  } finally {
    await fake.close();
  }
});

Deno.test("sender start-up: an Entra sender has its token before it says listening auth=entra", async () => {
  const fake = startFakeTokenEndpoint({ jwtKey: "k" });
  try {
    await using pf = spawnCli(
      ["relay-sender", "port-forward", "127.0.0.1:22", ...RELAY, "-b", "127.0.0.1:0"],
      { env: entraEnv(fake), name: "port-forward" },
    );
    const m = await pf.waitForLine(/msg="port-forward listening" .*/, 30_000);
    assert.match(m[0], / target=127\.0\.0\.1:22 auth=entra$/);
    assert.equal(fake.requests.length, 1, "fetched before listening");
  } finally {
    await fake.close();
  }
});

Deno.test("sender start-up: a wrong key is one ERROR naming relay, hyco and fix; port-forward keeps serving", async () => {
  await using relay = await startRelayServer();
  const wrong = { AZTUNNEL_KEY: btoa("not the relay's key") };
  await using pf = await startPortForward(relay, "127.0.0.1:22", {
    env: wrong,
    globalArgs: [],
  });
  const listening = pf.proc.stderrLines.find((l) => l.includes("port-forward listening")) ?? "";
  assert.match(listening, / target=127\.0\.0\.1:22 auth=sas key_name=e2e$/);
  const expected = new RegExp(
    `level=ERROR msg="relay ${relay.url} refused the sender for hybrid connection e2e \\(HTTP ` +
      `401 Unauthorized: invalid signature\\): check AZTUNNEL_KEY_NAME/AZTUNNEL_KEY or the ` +
      `Entra identity's role \\(Azure Relay Sender\\)" status=401`,
  );
  for (let i = 0; i < 2; i++) {
    const from = pf.proc.stderrLines.length;
    const client = await Deno.connect({ hostname: "127.0.0.1", port: pf.port });
    assert.equal(await client.read(new Uint8Array(8)).catch(() => null), null);
    client.close();
    await pf.proc.waitForLine(/level=WARN msg="forward failed"/, 20_000, { from });
  }
  await pf.proc.waitForLine(expected);
  assert.equal(pf.proc.stderrLines.filter((l) => l.includes("level=ERROR")).length, 1);
  assert.equal(pf.proc.exitStatus, undefined, "still serving");
});

Deno.test("sender start-up: connect names its auth and a wrong key's fix, and exits 1", async () => {
  await using relay = await startRelayServer();
  const r = await runCli(connectArgs(relay, "127.0.0.1:22"), {
    env: { ...relay.env, AZTUNNEL_KEY: btoa("not the relay's key") },
    stdin: "",
  });
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    /level=INFO msg="connect starting" target=127\.0\.0\.1:22 auth=sas key_name=e2e\n/,
  );
  assert.match(
    r.stderr,
    new RegExp(`level=ERROR msg="relay ${relay.url} refused the sender for hybrid connection e2e `),
  );
});

Deno.test("sender start-up: under --log-level warn, connect says once it is still waiting for the relay", async () => {
  await using relay = await startRelayServer();
  await using connect = spawnCli(
    connectArgs(relay, "127.0.0.1:22", { globalArgs: ["--log-level", "warn"], hyco: "nobody" }),
    { env: relay.env, stdin: "piped", name: "connect" },
  );
  const m = await connect.waitForLine(/msg="still waiting for the relay .*/, 20_000);
  assert.match(
    m[0],
    /^msg="still waiting for the relay \(attempt \d, last: HTTP 404 Endpoint does not exist: no listener is connected\)" bridge_id=[A-Z2-7]{16} target=127\.0\.0\.1:22$/,
  );
});
