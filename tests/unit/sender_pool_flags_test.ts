import assert from "node:assert/strict";
import { Command } from "@commander-js/extra-typings";
import { poolFlags } from "../../cmd/pool_flags.ts";
import { register } from "../../cmd/relay_sender.ts";
import { UsageError } from "../../lib/errors.ts";

Deno.test("pool flags: defaults 2, 16 and 32 with env vars, on port-forward and socks5-proxy only", () => {
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
    const streams = opts.find((o) => o.long === "--pool-streams")!;
    assert.equal(streams.defaultValue, "32", name);
    assert.equal(streams.envVar, "AZTUNNEL_POOL_STREAMS", name);
  }
  const connect = sender.commands.find((c) => c.name() === "connect")!;
  assert.ok(!connect.options.some((o) => o.long?.startsWith("--pool")), "connect does not pool");
});

Deno.test("pool flags: counts, 0 max turns warm legs off, min above max is a usage error", () => {
  assert.deepEqual(poolFlags("2", "16"), { min: 2, max: 16, streams: 32 });
  assert.deepEqual(poolFlags("0", "4", "0"), { min: 0, max: 4, streams: 0 });
  assert.deepEqual(poolFlags("3", "3", "32"), { min: 3, max: 3, streams: 32 });
  // Off: the default floor does not make `--pool-max 0` an error.
  assert.deepEqual(poolFlags("2", "0"), { min: 2, max: 0, streams: 32 });
  assert.throws(() => poolFlags("2", "16", "33"), {
    name: "UsageError",
    message: "--pool-streams 33 is more than a listener carries on one leg (32)",
  });
  assert.throws(() => poolFlags("2", "16", "x"), {
    message: 'invalid --pool-streams "x": expected a number >= 0',
  });
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
