import assert from "node:assert/strict";
import { Command } from "@commander-js/extra-typings";
import { register } from "../../cmd/relay_listener.ts";
import { UsageError } from "../../lib/errors.ts";

function listenerCommand() {
  const program = new Command("aztunnel").exitOverride();
  register(program);
  return { program, listener: program.commands.find((c) => c.name() === "relay-listener")! };
}

Deno.test("relay-listener --max-warm-legs: default 16, env AZTUNNEL_MAX_WARM_LEGS, in --help", () => {
  const { listener } = listenerCommand();
  const opt = listener.options.find((o) => o.long === "--max-warm-legs");
  assert.ok(opt);
  assert.equal(opt.defaultValue, "16");
  assert.equal(opt.envVar, "AZTUNNEL_MAX_WARM_LEGS");
  assert.match(listener.helpInformation(), /--max-warm-legs <n>\s+max warm legs held/);
});

Deno.test("relay-listener --max-warm-legs: a bad value is a usage error before anything runs", async () => {
  for (const bad of ["x", "-1", "1.5", ""]) {
    const { program } = listenerCommand();
    await assert.rejects(
      program.parseAsync(["relay-listener", "--max-warm-legs", bad], { from: "user" }),
      (err: unknown) =>
        err instanceof UsageError &&
        err.message === `invalid --max-warm-legs "${bad}": expected a number >= 0`,
      bad,
    );
  }
  const saved = Deno.env.get("AZTUNNEL_MAX_WARM_LEGS");
  Deno.env.set("AZTUNNEL_MAX_WARM_LEGS", "many");
  try {
    const { program } = listenerCommand();
    await assert.rejects(
      program.parseAsync(["relay-listener"], { from: "user" }),
      { message: 'invalid --max-warm-legs "many": expected a number >= 0' },
    );
  } finally {
    saved === undefined
      ? Deno.env.delete("AZTUNNEL_MAX_WARM_LEGS")
      : Deno.env.set("AZTUNNEL_MAX_WARM_LEGS", saved);
  }
});
