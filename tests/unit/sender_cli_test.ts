import assert from "node:assert/strict";
import { Command } from "@commander-js/extra-typings";
import { register as registerListener } from "../../cmd/relay_listener.ts";
import { resolveRelay } from "../../cmd/common.ts";
import { register as registerSender } from "../../cmd/relay_sender.ts";
import { UsageError } from "../../lib/errors.ts";
import { normalizeTarget } from "../../lib/sender/target.ts";

/** Runs `fn` with SAS credentials in the environment (restored afterwards). */
async function withSasEnv<T>(fn: () => Promise<T>): Promise<T> {
  const saved = ["AZTUNNEL_KEY_NAME", "AZTUNNEL_KEY"].map((k) => [k, Deno.env.get(k)] as const);
  Deno.env.set("AZTUNNEL_KEY_NAME", "policy");
  Deno.env.set("AZTUNNEL_KEY", "key");
  try {
    return await fn();
  } finally {
    for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
  }
}

const sources = (cli: string[]) => ({
  getOptionValueSource: (key: string) => cli.includes(key) ? "cli" : "env",
});

Deno.test("resolveRelay: --hyco > positional > env; --relay > --namespace > env", async () => {
  await withSasEnv(async () => {
    let r = await resolveRelay({ hyco: "env-hc", relay: "ns" }, sources([]), "pos-hc");
    assert.equal(r.entity, "pos-hc");
    r = await resolveRelay({ hyco: "flag-hc", relay: "ns" }, sources(["hyco"]), "pos-hc");
    assert.equal(r.entity, "flag-hc");
    r = await resolveRelay({ hyco: "env-hc", relay: "ns" }, sources([]));
    assert.equal(r.entity, "env-hc");
    assert.deepEqual(r.endpoint, { scheme: "wss", host: "ns.servicebus.windows.net" });
    assert.equal(r.tokens.kind, "sas");
    r = await resolveRelay({ hyco: "h", relay: "env-ns", namespace: "alias" }, sources([]));
    assert.equal(r.endpoint.host, "alias.servicebus.windows.net");
    r = await resolveRelay(
      { hyco: "h", relay: "flag-ns", namespace: "alias" },
      sources(["relay"]),
    );
    assert.equal(r.endpoint.host, "flag-ns.servicebus.windows.net");
    r = await resolveRelay({ hyco: "h", relay: "ws://127.0.0.1:8080" }, sources(["relay"]));
    assert.deepEqual(r.endpoint, { scheme: "ws", host: "127.0.0.1:8080" });
    r = await resolveRelay({ hyco: "h", relay: "ns", relaySuffix: ".example.cn" }, sources([]));
    assert.equal(r.endpoint.host, "ns.example.cn");
  });
});

Deno.test("resolveRelay: missing names are usage errors, hyco first", async () => {
  await assert.rejects(
    resolveRelay({}, sources([])),
    { message: "hybrid connection name is required: use --hyco or set AZTUNNEL_HYCO_NAME" },
  );
  await assert.rejects(
    resolveRelay({ hyco: "h" }, sources([])),
    { message: "relay namespace is required: use --relay or set AZTUNNEL_RELAY_NAME" },
  );
  await assert.rejects(resolveRelay({ hyco: "h", relay: "a:b" }, sources([])), UsageError);
});

Deno.test("normalizeTarget: host:port, bracketed and ssh-style IPv6", () => {
  assert.equal(normalizeTarget("10.0.0.5:22"), "10.0.0.5:22");
  assert.equal(normalizeTarget("db.internal:5432"), "db.internal:5432");
  assert.equal(normalizeTarget("[::1]:22"), "[::1]:22");
  assert.equal(normalizeTarget("fd00::5:22"), "[fd00::5]:22");
  for (const bad of ["host", "host:", ":22", "host:0", "host:65536", "host:ssh", "a:b:c", ""]) {
    assert.throws(() => normalizeTarget(bad), UsageError, bad);
  }
});

Deno.test("commands register with the documented flags and defaults", () => {
  const program = new Command("aztunnel");
  registerListener(program);
  registerSender(program);
  const listener = program.commands.find((c) => c.name() === "relay-listener")!;
  const flags = listener.options.map((o) => o.long);
  for (
    const f of [
      "--relay",
      "--hyco",
      "--relay-suffix",
      "--relay-ca-cert",
      "--allow",
      "--max-connections",
      "--connect-timeout",
      "--tcp-keepalive",
      "--drain-timeout",
    ]
  ) assert.ok(flags.includes(f), f);
  const sender = program.commands.find((c) => c.name() === "relay-sender")!;
  assert.deepEqual(sender.commands.map((c) => c.name()), [
    "port-forward",
    "socks5-proxy",
    "http-proxy",
    "connect",
    "agent",
  ]);
  const bindDefault = (name: string) =>
    sender.commands.find((c) => c.name() === name)!.options.find((o) => o.long === "--bind")
      ?.defaultValue;
  assert.equal(bindDefault("port-forward"), "127.0.0.1:0");
  assert.equal(bindDefault("socks5-proxy"), "127.0.0.1:1080");
  assert.equal(bindDefault("http-proxy"), "127.0.0.1:3128");
  assert.equal(bindDefault("connect"), undefined);
});
