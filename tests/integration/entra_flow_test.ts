/**
 * Entra ID with the real @azure/identity, against the fake managed-identity endpoint (App Service
 * flow) that issues HS256 JWTs; relay-server verifies them with `entraJwtKey`. Every Entra client
 * runs in a subprocess, because DefaultAzureCredential reads the process-wide environment.
 */
import assert from "node:assert/strict";
import { startRelayServer } from "../../lib/server/mod.ts";
import { startFakeTokenEndpoint } from "../helpers/fake_token_endpoint.ts";
import { REPO_ROOT, run, runCli, spawnCli } from "../helpers/proc.ts";
import { readExactly, startEchoServer, writeAll } from "../helpers/servers.ts";

const JWT_KEY = "entra-test-signing-key";
const HYCO = "entra-hc";

/**
 * The environment of an Entra client: the fake endpoint, and empty SAS variables so a SAS key in
 * the test runner's own environment cannot take over.
 */
function entraEnv(fake: ReturnType<typeof startFakeTokenEndpoint>): Record<string, string> {
  return {
    ...fake.env,
    AZTUNNEL_KEY_NAME: "",
    AZTUNNEL_KEY: "",
    NO_PROXY: "127.0.0.1,localhost",
    no_proxy: "127.0.0.1,localhost",
  };
}

const decode = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("entra: 64 concurrent getToken calls make one request to the token endpoint", async () => {
  const fake = startFakeTokenEndpoint({ jwtKey: JWT_KEY });
  try {
    const entra = new URL("../../lib/relay/entra.ts", import.meta.url).href;
    const script = `
      import { createEntraTokenProvider } from "${entra}";
      const p = createEntraTokenProvider();
      const all = await Promise.all(Array.from({ length: 64 }, (_, i) => p.getToken("https://ns/hc" + i)));
      const again = await p.getToken("https://ns/other");
      console.log(JSON.stringify({ kind: p.kind, tokens: [...new Set([...all, again].map((t) => t.token))], expiresAt: all[0].expiresAt }));
    `;
    const r = await run(Deno.execPath(), ["eval", "--config", `${REPO_ROOT}deno.json`, script], {
      env: entraEnv(fake),
    });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.text) as { kind: string; tokens: string[]; expiresAt: number };
    assert.equal(out.kind, "entra");
    assert.equal(out.tokens.length, 1);
    assert.ok(out.expiresAt > Date.now() + 50 * 60_000);
    assert.equal(fake.requests.length, 1);
    assert.equal(fake.requests[0].resource, "https://relay.azure.net");
    const claims = JSON.parse(
      atob(out.tokens[0].split(".")[1].replaceAll("-", "+").replaceAll("_", "/")),
    );
    assert.equal(claims.aud, "https://relay.azure.net");
  } finally {
    await fake.close();
  }
});

Deno.test("entra: relay-listener and relay-sender port-forward authenticate with Entra", async () => {
  const fake = startFakeTokenEndpoint({ jwtKey: JWT_KEY });
  const relay = await startRelayServer({ bind: "127.0.0.1:0", entraJwtKey: JWT_KEY });
  const echo = startEchoServer();
  const env = entraEnv(fake);
  const relayFlags = ["--relay", relay.url, "--hyco", HYCO];
  await using listener = spawnCli(
    ["--log-level", "debug", "relay-listener", ...relayFlags, "--allow", echo.addr],
    { env, name: "relay-listener" },
  );
  try {
    await listener.waitForLine(/control_started/, 30_000);
    await using pf = spawnCli(
      [
        "--log-level",
        "debug",
        "relay-sender",
        "port-forward",
        echo.addr,
        ...relayFlags,
        "-b",
        "127.0.0.1:0",
      ],
      { env, name: "port-forward" },
    );
    const m = await pf.waitForLine(/msg="port-forward listening" bind=(\S+)/, 30_000);
    const port = Number(m[1].slice(m[1].lastIndexOf(":") + 1));
    for (const text of ["through entra one", "through entra two"]) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        await writeAll(conn, new TextEncoder().encode(text));
        assert.equal(decode(await readExactly(conn, text.length)), text);
      } finally {
        conn.close();
      }
    }
    // One token per process: the listener's and the sender's (both connections share one).
    assert.equal(fake.requests.length, 2);
    assert.ok(fake.requests.every((r) => r.resource === "https://relay.azure.net"));
    const all = listener.stderr + pf.stderr;
    assert.ok(!/sb-hc-token=(?!REDACTED)/.test(all), "unredacted token in logs");
  } finally {
    await listener.kill("SIGKILL");
    await relay.close();
    await echo.close();
    await fake.close();
  }
});

Deno.test("entra: an expired token is refused by the relay", async () => {
  const fake = startFakeTokenEndpoint({ jwtKey: JWT_KEY });
  fake.setMode({ kind: "expired_jwt", agoSec: 120 });
  const relay = await startRelayServer({ bind: "127.0.0.1:0", entraJwtKey: JWT_KEY });
  try {
    const r = await runCli(
      ["relay-sender", "connect", "--relay", relay.url, "--hyco", HYCO, "127.0.0.1:22"],
      { env: entraEnv(fake), stdin: "" },
    );
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /HTTP 401/);
    assert.match(r.stderr, /Azure Relay Sender role/);
    assert.equal(fake.requests.length, 1);
  } finally {
    await relay.close();
    await fake.close();
  }
});

Deno.test("entra: a token whose roles lack Send is refused with 403; no roles at all, 401", async () => {
  for (const [roles, status] of [[["Listen"], 403], [null, 401]] as const) {
    const fake = startFakeTokenEndpoint({ jwtKey: JWT_KEY, roles });
    const relay = await startRelayServer({ bind: "127.0.0.1:0", entraJwtKey: JWT_KEY });
    try {
      const r = await runCli(
        ["relay-sender", "connect", "--relay", relay.url, "--hyco", HYCO, "127.0.0.1:22"],
        { env: entraEnv(fake), stdin: "" },
      );
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`HTTP ${status}`));
      assert.match(r.stderr, /Azure Relay Sender role/);
    } finally {
      await relay.close();
      await fake.close();
    }
  }
});

Deno.test("entra: no working credential gives one explained line and exit 1", async () => {
  const fake = startFakeTokenEndpoint({ jwtKey: JWT_KEY });
  fake.setMode({ kind: "error", status: 400 });
  try {
    const r = await runCli(
      ["relay-sender", "connect", "--relay", "ws://127.0.0.1:9", "--hyco", HYCO, "127.0.0.1:22"],
      { env: { ...entraEnv(fake), PATH: "/nonexistent" }, stdin: "" },
    );
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.trim().split("\n").filter((l) => l.startsWith("aztunnel: error:"));
    assert.equal(lines.length, 1, r.stderr);
    const line = lines[0];
    assert.match(
      line,
      /Entra ID authentication failed: no credential could get a token for https:\/\/relay\.azure\.net\/\.default/,
    );
    assert.match(line, /managed identity: invalid_request: fake token endpoint failure/);
    assert.match(line, /Azure CLI: az not installed/);
    assert.match(line, /AZTUNNEL_KEY_NAME and AZTUNNEL_KEY/);
    assert.match(line, /`az login`/);
    assert.match(line, /Azure Relay Sender/);
    // The explanation is printed once: the dial's WARN carries only the short form.
    assert.equal(r.stderr.split("to fix:").length, 2, r.stderr);
    assert.match(
      r.stderr,
      /level=WARN msg="relay dial failed" .*code=relay_failed error="get token: Entra ID authentication failed: no credential could get a token for https:\/\/relay\.azure\.net\/\.default"\n/,
    );
    assert.ok(!/^\s+at /m.test(r.stderr), "stack trace on stderr");
  } finally {
    await fake.close();
  }
});
