/** The CLI as a user meets it: version, help, and usage errors with exit code 2. */
import assert from "node:assert/strict";
import { createSasToken } from "../../lib/relay/sas.ts";
import { connectWebSocket } from "../../lib/ws/mod.ts";
import { runCli, startRelayServer } from "../helpers/proc.ts";

const RELAY = ["--relay", "ws://127.0.0.1:9", "--hyco", "h"];

Deno.test("cli: --version prints the version and exits 0", async () => {
  const r = await runCli(["--version"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.text, /^\S+\n$/);
});

Deno.test("cli: `version` prints the same version", async () => {
  const [flag, cmd] = await Promise.all([runCli(["--version"]), runCli(["version"])]);
  assert.equal(cmd.code, 0, cmd.stderr);
  assert.equal(cmd.text, flag.text);
});

Deno.test("cli: --help lists the commands and exits 0", async () => {
  const r = await runCli(["--help"]);
  assert.equal(r.code, 0, r.stderr);
  for (const cmd of ["relay-listener", "relay-sender", "relay-server"]) {
    assert.match(r.text + r.stderr, new RegExp(cmd));
  }
});

Deno.test("cli: subcommand --help exits 0", async () => {
  const r = await runCli(["relay-sender", "port-forward", "--help"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.text, /--bind/);
});

Deno.test("cli: an unknown flag is a usage error (exit 2)", async () => {
  const r = await runCli(["relay-sender", "connect", ...RELAY, "--no-such-flag", "127.0.0.1:22"]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^aztunnel: error: /m);
});

Deno.test("cli: connect without a target is a usage error (exit 2)", async () => {
  const r = await runCli(["relay-sender", "connect", ...RELAY]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^aztunnel: error: /m);
});

Deno.test("cli: port-forward without a target is a usage error (exit 2)", async () => {
  const r = await runCli(["relay-sender", "port-forward", ...RELAY]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^aztunnel: error: /m);
});

Deno.test("cli: a malformed duration is a usage error (exit 2)", async () => {
  const r = await runCli(["relay-listener", ...RELAY, "--connect-timeout", "5 parsecs"], {
    env: { AZTUNNEL_KEY_NAME: "k", AZTUNNEL_KEY: "v" },
  });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^aztunnel: error: .*connect-timeout/m);
});

Deno.test("cli: a missing hyco is a usage error naming the fix", async () => {
  const r = await runCli(["relay-sender", "connect", "--relay", "ws://127.0.0.1:9", "h:1"], {
    env: { AZTUNNEL_HYCO_NAME: "" },
  });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /aztunnel: error: hybrid connection name is required/);
});

Deno.test("cli: --log-level and --log-format ignore case; unknown values stay usage errors", async () => {
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    // The --sas-policy WARN and the busy address give each level something to show or hide.
    const args = ["relay-server", "--sas-policy", "a=b", "--bind", `127.0.0.1:${busy.addr.port}`];
    const listenError =
      `aztunnel: error: listen 127.0.0.1:${busy.addr.port}: Address already in use (os error 98)`;
    const [warn, error, json, unknown] = await Promise.all([
      runCli(["--log-level", "Warn", ...args]),
      runCli(["--log-level", "ERROR", ...args]),
      runCli(["--log-level", "INFO", "--log-format", "JSON", ...args]),
      runCli(["--log-level", "loud", ...args]),
    ]);
    assert.equal(warn.code, 1, warn.stderr);
    const lines = warn.stderr.trimEnd().split("\n");
    assert.equal(lines.length, 2, warn.stderr);
    assert.match(
      lines[0],
      /^time=\S+ level=WARN msg="secret passed on the command line is visible to other local users; prefer --sas-policy-file or AZTUNNEL_RELAY_SAS_POLICIES" flag=--sas-policy$/,
    );
    assert.equal(lines[1], listenError);
    assert.equal(error.code, 1, error.stderr);
    assert.equal(error.stderr, listenError + "\n");
    assert.equal(json.code, 1, json.stderr);
    const record = JSON.parse(json.stderr.split("\n")[0]);
    assert.deepEqual([record.level, record.flag], ["WARN", "--sas-policy"]);
    assert.equal(unknown.code, 2, unknown.stderr);
    assert.equal(
      unknown.stderr,
      "aztunnel: error: option '--log-level <level>' argument 'loud' is invalid. Allowed choices are debug, info, warn, error.\n",
    );
  } finally {
    busy.close();
  }
});

Deno.test("cli: --help still lists the log level and format choices", async () => {
  const r = await runCli(["--help"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.text,
    /--log-level <level>\s+log level \(choices: "debug", "info", "warn",\s+"error", default: "info"\)/,
  );
  assert.match(
    r.text,
    /--log-format <format>\s+log format \(choices: "logfmt", "json",\s+default: "logfmt"\)/,
  );
});

Deno.test("cli: a duration past setTimeout's limit is a usage error (exit 2)", async () => {
  const env = { AZTUNNEL_KEY_NAME: "k", AZTUNNEL_KEY: "v" };
  const [listener, server] = await Promise.all([
    runCli(["relay-listener", ...RELAY, "--connect-timeout", "1000h"], { env }),
    runCli(["relay-server", "--bind", "127.0.0.1:0", "--latency", "597h"], { env }),
  ]);
  assert.equal(listener.code, 2, listener.stderr);
  assert.equal(
    listener.stderr,
    'aztunnel: error: invalid --connect-timeout "1000h": must be at most 596h31m23.647s\n',
  );
  assert.equal(server.code, 2, server.stderr);
  assert.equal(
    server.stderr,
    'aztunnel: error: invalid --latency "597h": must be at most 596h31m23.647s\n',
  );
});

Deno.test("cli: relay-server with a missing --tls-cert is a usage error naming the file", async () => {
  const r = await runCli([
    "relay-server",
    "--bind",
    "127.0.0.1:0",
    "--tls-cert",
    "/nonexistent/cert.pem",
    "--tls-key",
    "/nonexistent/key.pem",
  ], { env: { AZTUNNEL_KEY_NAME: "k", AZTUNNEL_KEY: "v" } });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^aztunnel: error: --tls-cert \/nonexistent\/cert\.pem: No such file/);
});

Deno.test("cli: relay-server reads AZTUNNEL_RELAY_SAS_POLICIES, and refuses a bad right in it", async () => {
  const bad = await runCli(["relay-server", "--bind", "127.0.0.1:0"], {
    env: { AZTUNNEL_RELAY_SAS_POLICIES: "ok=k1;broken=k2:Listen,Bogus" },
  });
  assert.equal(bad.code, 2, bad.stderr);
  assert.equal(
    bad.stderr,
    'aztunnel: error: invalid AZTUNNEL_RELAY_SAS_POLICIES entry "broken=***": unknown right "Bogus" (expected Listen, Send or Manage)\n',
  );

  await using relay = await startRelayServer({
    env: {
      AZTUNNEL_RELAY_SAS_POLICIES: "listener=k1:Listen;sender=k2:Send",
      AZTUNNEL_KEY_NAME: "",
      AZTUNNEL_KEY: "",
    },
  });
  const dial = async (name: string, key: string) => {
    const token = await createSasToken(`https://127.0.0.1/h`, name, key, Date.now() / 1000 + 600);
    return await connectWebSocket(
      `${relay.url}/$hc/h?sb-hc-action=listen&sb-hc-token=${encodeURIComponent(token)}`,
      { proxy: "none" },
    );
  };
  const control = await dial("listener", "k1");
  await control.close();
  // Only the two policies from the variable exist, with their rights; no key was generated.
  await assert.rejects(dial("sender", "k2"), /403/);
  assert.ok(!relay.proc.stdout.includes("AZTUNNEL_KEY"), relay.proc.stdout);
  assert.ok(!relay.proc.stderr.includes("level=WARN"), relay.proc.stderr);
});
