/**
 * `relay-listener` as systemd and a user at a terminal see it (issue 11): refused at start-up it
 * exits 1 within seconds with one line naming the relay, the hyco and the fix; once connected it
 * outlives relay restarts; it says `listener ready`; one AZTUNNEL_KEY* variable alone is a usage
 * error for every relay command.
 */
import assert from "node:assert/strict";
import {
  logAttr,
  type RelayServer,
  runCli,
  sasEnv,
  startListener,
  startRelayServer,
} from "../helpers/proc.ts";

/** "Fails fast": the refusal comes on the first attempt, well inside this. */
const EXIT_WITHIN_MS = 5000;

/** Runs relay-listener against `relay` to its exit; returns the status, stderr and the time taken. */
async function listenerRun(relay: RelayServer, env: Record<string, string> = relay.env) {
  const started = Date.now();
  const r = await runCli(
    ["relay-listener", "--relay", relay.url, "--hyco", "e2e", "--allow", "127.0.0.1:22"],
    { env, deadlineMs: 20_000 },
  );
  return { ...r, elapsed: Date.now() - started };
}

/** The `aztunnel: error:` lines of `stderr`. */
const errorLines = (stderr: string) => stderr.split("\n").filter((l) => l.startsWith("aztunnel: "));

Deno.test("listener cli: a wrong key exits 1 within seconds with the 401 line", async () => {
  await using relay = await startRelayServer();
  const wrong = sasEnv();
  const r = await listenerRun(relay, { ...relay.env, AZTUNNEL_KEY: wrong.AZTUNNEL_KEY });
  assert.equal(r.code, 1, r.stderr);
  assert.ok(r.elapsed < EXIT_WITHIN_MS, `took ${r.elapsed} ms`);
  assert.deepEqual(errorLines(r.stderr), [
    `aztunnel: error: relay ${relay.url} refused the listener for hybrid connection e2e (HTTP 401 ` +
    "Unauthorized: invalid signature): check AZTUNNEL_KEY_NAME/AZTUNNEL_KEY or the Entra " +
    "identity's role (Azure Relay Listener)",
  ]);
  assert.doesNotMatch(r.stderr, /reconnecting|listener ready/);
  assert.ok(!r.stderr.includes(wrong.AZTUNNEL_KEY) && !r.stderr.includes(relay.env.AZTUNNEL_KEY));
});

Deno.test("listener cli: a Send-only key exits 1 with the 403 line", async () => {
  const env = sasEnv();
  await using relay = await startRelayServer({
    env,
    args: ["--sas-policy", `${env.AZTUNNEL_KEY_NAME}=${env.AZTUNNEL_KEY}:Send`],
  });
  const r = await listenerRun(relay);
  assert.equal(r.code, 1, r.stderr);
  assert.ok(r.elapsed < EXIT_WITHIN_MS, `took ${r.elapsed} ms`);
  assert.deepEqual(errorLines(r.stderr), [
    `aztunnel: error: relay ${relay.url} refused the listener for hybrid connection e2e (HTTP 403 ` +
    'Forbidden: policy "e2e" lacks the Listen right): the key/role lacks Listen: use a SAS ' +
    "policy with the Listen right or give the identity the Azure Relay Listener role",
  ]);
});

Deno.test("listener cli: a hybrid connection relay-server does not serve exits 1 with the 404 line", async () => {
  await using relay = await startRelayServer({ args: ["--hyco", "other"] });
  const r = await listenerRun(relay);
  assert.equal(r.code, 1, r.stderr);
  assert.ok(r.elapsed < EXIT_WITHIN_MS, `took ${r.elapsed} ms`);
  assert.deepEqual(errorLines(r.stderr), [
    `aztunnel: error: relay ${relay.url} answered HTTP 404 Endpoint does not exist: hybrid ` +
    `connection e2e does not exist in ${relay.url}: start relay-server with --hyco e2e (or ` +
    "without --hyco, to serve any name)",
  ]);
});

Deno.test("listener cli: says `listener ready`, then outlives a relay restart and reconnects", async () => {
  await using first = await startRelayServer();
  await using listener = await startListener(first, { args: ["--max-connections", "4"] });
  const ready = (await listener.waitForLine(/listener ready/)).input ?? "";
  assert.match(ready, /level=INFO/);
  assert.equal(logAttr(ready, "relay_url"), first.url);
  assert.equal(logAttr(ready, "hyco"), "e2e");
  assert.equal(logAttr(ready, "allow"), "1 entry: 127.0.0.1:*");
  assert.equal(logAttr(ready, "max_connections"), "4");
  assert.equal(logAttr(ready, "max_warm_legs"), "16");
  assert.equal(logAttr(ready, "auth"), "sas");
  assert.equal(logAttr(ready, "key_name"), "e2e");

  const mark = listener.stderrLines.length;
  await first.proc.kill("SIGKILL");
  const warn = await listener.waitForLine(/control channel disconnected, reconnecting/);
  assert.equal(logAttr(warn.input ?? "", "relay_url"), first.url);
  assert.equal(logAttr(warn.input ?? "", "hyco"), "e2e");
  await using _again = await startRelayServer({ env: first.env, args: ["--bind", first.addr] });
  await listener.waitForLine(/control_started/, 30_000, { from: mark });
  assert.equal(listener.exitStatus, undefined, "still running");
  assert.equal(listener.stderrLines.filter((l) => /listener ready/.test(l)).length, 1);
});

Deno.test("listener cli: AZTUNNEL_KEY without AZTUNNEL_KEY_NAME (or the reverse) is a usage error", async () => {
  const relay = ["--relay", "ws://127.0.0.1:9", "--hyco", "h"];
  const commands = [
    ["relay-listener", ...relay],
    ["relay-sender", "connect", ...relay, "127.0.0.1:22"],
    ["relay-sender", "port-forward", "127.0.0.1:22", ...relay, "-b", "127.0.0.1:0"],
    ["relay-sender", "socks5-proxy", ...relay, "-b", "127.0.0.1:0"],
  ];
  const envs = [{ AZTUNNEL_KEY: "a2V5", AZTUNNEL_KEY_NAME: "" }, { AZTUNNEL_KEY_NAME: "name" }];
  await Promise.all(commands.flatMap((args) =>
    envs.map(async (env) => {
      const r = await runCli(args, { env: { AZTUNNEL_KEY: "", ...env }, stdin: "" });
      assert.equal(r.code, 2, `${args[0]} ${args[1]}: ${r.stderr}`);
      assert.deepEqual(errorLines(r.stderr), [
        "aztunnel: error: AZTUNNEL_KEY_NAME and AZTUNNEL_KEY must be set together",
      ]);
    })
  ));
});

Deno.test("listener cli: a malformed --relay-accept-host is a usage error naming the value", async () => {
  for (const bad of ["host:99999", "a b", "[::1", "h:x"]) {
    const r = await runCli(
      [
        "relay-listener",
        "--relay",
        "ws://127.0.0.1:1",
        "--hyco",
        "e2e",
        "--relay-accept-host",
        bad,
      ],
      { env: sasEnv(), deadlineMs: 20_000 },
    );
    assert.equal(r.code, 2, `${bad}: ${r.stderr}`);
    assert.equal(
      r.stderr.trim(),
      `aztunnel: error: invalid --relay-accept-host "${bad}": expected host or host:port`,
    );
  }
});
