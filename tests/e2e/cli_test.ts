/** The CLI as a user meets it: version, help, and usage errors with exit code 2. */
import assert from "node:assert/strict";
import { runCli } from "../helpers/proc.ts";

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
