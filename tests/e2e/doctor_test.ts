/**
 * `aztunnel doctor` as a process against `aztunnel relay-server` and `relay-listener` processes:
 * the report on stdout, exit 0 when all passed, 1 when one failed, 2 for a usage error.
 */
import assert from "node:assert/strict";
import { runCli, startListener, startRelayServer } from "../helpers/proc.ts";

const doctorArgs = (url: string, ...more: string[]) => [
  "doctor",
  "--relay",
  url,
  "--hyco",
  "e2e",
  ...more,
];

Deno.test("doctor CLI: all checks pass with a listener up (exit 0), target included", async () => {
  await using relay = await startRelayServer();
  await using _listener = await startListener(relay, { allow: [relay.addr] });
  const r = await runCli(doctorArgs(relay.url, "--target", relay.addr), { env: relay.env });
  const port = relay.addr.split(":")[1];
  assert.deepEqual(r.text.trimEnd().split("\n"), [
    "✔ relay name resolves: 127.0.0.1 is an IP address, nothing to resolve",
    `✔ TCP to relay: connected to 127.0.0.1:${port}`,
    "✔ TLS to relay: plain ws:// (local relay), TLS skipped",
    '✔ credential and token: SAS key "e2e" (AZTUNNEL_KEY_NAME), token valid for 1h0m0s',
    "✔ token accepted for Send: the relay took the sender dial (HTTP 101)",
    "✔ token accepted for Listen: control channel opened and closed",
    r.text.split("\n")[6],
    `✔ target allowed and reachable: the listener connected to ${relay.addr}`,
  ]);
  assert.match(
    r.text.split("\n")[6],
    /^✔ listener online: a listener \(listener_id \w+\) answered the probe$/,
  );
  assert.equal(r.code, 0, r.stderr);
});

Deno.test("doctor CLI: no listener exits 1 and says so on stderr", async () => {
  await using relay = await startRelayServer();
  const r = await runCli(doctorArgs(relay.url, "--skip-listen"), { env: relay.env });
  const lines = r.text.trimEnd().split("\n");
  assert.equal(lines[5], "- token accepted for Listen: skipped (--skip-listen)");
  assert.match(lines[6], /^✖ listener online: no listener is connected to "e2e"/);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /aztunnel: error: doctor: a check failed \(see above\)/);
});

Deno.test("doctor CLI: bad --timeout, --target or --resource-id with --relay are usage errors (exit 2)", async () => {
  for (
    const [args, message] of [
      [
        ["doctor", "--relay", "ws://127.0.0.1:1", "--hyco", "h", "--timeout", "0"],
        /invalid --timeout "0"/,
      ],
      [
        ["doctor", "--relay", "ws://127.0.0.1:1", "--hyco", "h", "--target", "nope"],
        /invalid target "nope"/,
      ],
      [
        ["doctor", "--relay", "ws://127.0.0.1:1", "--resource-id", "/subscriptions/s"],
        /leave out --relay/,
      ],
      [["doctor", "--hyco", "h"], /relay namespace is required/],
    ] as const
  ) {
    const r = await runCli([...args], { env: { AZTUNNEL_RELAY_NAME: "" } });
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.text, "");
  }
});
