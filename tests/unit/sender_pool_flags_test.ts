import assert from "node:assert/strict";
import { Command } from "@commander-js/extra-typings";
import { poolFlags } from "../../cmd/pool_flags.ts";
import { register } from "../../cmd/relay_sender.ts";
import { UsageError } from "../../lib/errors.ts";

Deno.test("pool flags: defaults 2 and 16 with env vars, on port-forward and socks5-proxy only", () => {
  const program = new Command("aztunnel");
  register(program);
  const sender = program.commands.find((c) => c.name() === "relay-sender")!;
  for (const name of ["port-forward", "socks5-proxy"]) {
    const opts = sender.commands.find((c) => c.name() === name)!.options;
    const min = opts.find((o) => o.long === "--pool-min")!;
    const max = opts.find((o) => o.long === "--pool-max")!;
    assert.equal(min.defaultValue, "2", name);
    assert.equal(min.envVar, "AZTUNNEL_POOL_MIN", name);
    assert.equal(max.defaultValue, "16", name);
    assert.equal(max.envVar, "AZTUNNEL_POOL_MAX", name);
  }
  const connect = sender.commands.find((c) => c.name() === "connect")!;
  assert.ok(!connect.options.some((o) => o.long?.startsWith("--pool")), "connect does not pool");
});

Deno.test("pool flags: counts, 0 max turns warm legs off, min above max is a usage error", () => {
  assert.deepEqual(poolFlags("2", "16"), { min: 2, max: 16 });
  assert.deepEqual(poolFlags("0", "4"), { min: 0, max: 4 });
  assert.deepEqual(poolFlags("3", "3"), { min: 3, max: 3 });
  // Off: the default floor does not make `--pool-max 0` an error.
  assert.deepEqual(poolFlags("2", "0"), { min: 2, max: 0 });
  assert.throws(() => poolFlags("5", "4"), {
    name: "UsageError",
    message: "--pool-min 5 is more than --pool-max 4",
  });
  for (const [min, max] of [["-1", "4"], ["x", "4"], ["1", "1.5"], ["1", ""], ["1", "-0"]]) {
    assert.throws(() => poolFlags(min, max), UsageError, `${min} ${max}`);
  }
  assert.throws(() => poolFlags("1", "many"), {
    message: 'invalid --pool-max "many": expected a number >= 0',
  });
});
