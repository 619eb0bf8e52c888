import assert from "node:assert/strict";
import { commandSpecs, completionScript } from "../../cmd/completion.ts";
import { buildProgram } from "../../cmd/root.ts";

Deno.test("completion: the command tree with global flags everywhere and choices kept", () => {
  const specs = commandSpecs(buildProgram());
  const at = (path: string) => specs.find((s) => s.path.join(" ") === path);
  assert.deepEqual(at("")?.path, []);
  assert.ok(at("")!.subcommands.includes("relay-sender"));
  assert.ok(!at("")!.subcommands.includes("help"), "commander's help command is not offered");
  const pf = at("relay-sender port-forward")!;
  const names = pf.flags.flatMap((f) => f.names);
  for (const n of ["--bind", "-b", "--relay", "--hyco", "--log-level", "--help"]) {
    assert.ok(names.includes(n), n);
  }
  assert.ok(!names.includes("--namespace") && !names.includes("--relay-insecure-tls"), "hidden");
  assert.deepEqual(pf.flags.find((f) => f.names[0] === "--log-level")?.choices, [
    "debug",
    "info",
    "warn",
    "error",
  ]);
  assert.equal(at("relay-server")!.flags.find((f) => f.names[0] === "--tls-cert")?.path, true);
  assert.equal(at("relay-server")!.flags.find((f) => f.names[0] === "--bind")?.path, false);
  assert.deepEqual(at("completion")!.argChoices, ["bash", "zsh", "fish"]);
  // arc's own flags are accepted after its subcommands.
  assert.ok(at("arc connect")!.flags.some((f) => f.names[0] === "--resource-id"));
});

Deno.test("completion: fish tells `arc connect` from `relay-sender connect`", () => {
  const fish = completionScript("fish", commandSpecs(buildProgram()));
  assert.match(
    fish,
    /-n '__fish_seen_subcommand_from arc; and __fish_seen_subcommand_from connect' -l resource-id/,
  );
  assert.doesNotMatch(
    fish,
    /-n '__fish_seen_subcommand_from relay-sender; and __fish_seen_subcommand_from connect' -l resource-id/,
  );
  const zsh = completionScript("zsh", commandSpecs(buildProgram()));
  assert.ok(zsh.endsWith(completionScript("bash", commandSpecs(buildProgram()))));
});
