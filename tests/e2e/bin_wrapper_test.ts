/**
 * bin/aztunnel runs the program with exactly the permissions the compiled binary carries, so these
 * tests also prove that the baked permission list is enough for the whole demo path (relay-server,
 * listener, port-forward, SOCKS5, metrics) — a missing permission would fail with NotCapable.
 */
import assert from "node:assert/strict";
import { hostTarget, permissionFlags } from "../../scripts/compile.ts";
import { REPO_ROOT, run } from "../helpers/proc.ts";

const BIN = `${REPO_ROOT}bin/aztunnel`;

Deno.test("bin/aztunnel carries the same permissions as the compiled binary", async () => {
  const script = await Deno.readTextFile(BIN);
  for (const flag of permissionFlags(hostTarget())) assert.ok(script.includes(flag), flag);
  assert.doesNotMatch(script, /\s-A\s|--allow-all/);
});

Deno.test("bin/aztunnel --version and a usage error", async () => {
  const version = await run(BIN, ["--version"]);
  assert.equal(version.code, 0, version.stderr);
  assert.match(version.text, /^\S+\n$/);
  const bad = await run(BIN, ["relay-sender", "connect"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^aztunnel: error: missing required argument 'target'/m);
});

Deno.test("bin/aztunnel demo --once passes under the baked permissions, with metrics", async () => {
  const res = await run(BIN, ["--metrics-addr", "127.0.0.1:0", "demo", "--once"], {
    deadlineMs: 60_000,
  });
  assert.equal(res.code, 0, res.stdout.length ? res.text + res.stderr : res.stderr);
  assert.match(res.text, /Self-check passed/);
  assert.doesNotMatch(res.stderr, /NotCapable|Requires .* access/);
});
