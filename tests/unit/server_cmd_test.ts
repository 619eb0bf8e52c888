import assert from "node:assert/strict";
import { Command } from "@commander-js/extra-typings";
import { parseSize, register } from "../../cmd/relay_server.ts";
import { UsageError } from "../../lib/errors.ts";
import { configureLogging, resetLogging } from "../../lib/observe/log.ts";

function program(): Command {
  const p = new Command("aztunnel").exitOverride();
  register(p);
  for (const c of p.commands) c.exitOverride();
  return p;
}

async function run(...args: string[]): Promise<void> {
  await program().parseAsync(args, { from: "user" });
}

Deno.test("parseSize accepts bytes and binary/decimal units", () => {
  assert.equal(parseSize("1048576", "--x"), 1048576);
  assert.equal(parseSize("16MiB", "--x"), 16 * 1024 * 1024);
  assert.equal(parseSize("512 kib", "--x"), 512 * 1024);
  assert.equal(parseSize("1MB", "--x"), 1_000_000);
  assert.equal(parseSize("1.5KiB", "--x"), 1536);
  for (const bad of ["", "0", "-1", "1XB", "MiB", "1e9"]) {
    assert.throws(() => parseSize(bad, "--x"), UsageError, bad);
  }
});

Deno.test("relay-server: bad flag values are usage errors", async () => {
  const cases: [string[], RegExp][] = [
    [["--bind", "nope"], /invalid --bind/],
    [["--bind", "0.0.0.0:0"], /--public-url is required/],
    [["--public-url", "ftp://x"], /invalid --public-url/],
    [["--tls-cert", "a.pem"], /must be given together/],
    [["--tls-cert", "/nonexistent/a.pem", "--tls-key", "/nonexistent/b.pem"], /--tls-cert/],
    [["--max-listeners", "0"], /--max-listeners/],
    [["--max-listeners", "x"], /--max-listeners/],
    [["--rendezvous-timeout", "5"], /--rendezvous-timeout/],
    [["--rendezvous-timeout", "0s"], /--rendezvous-timeout/],
    [["--latency", "-1s"], /--latency/],
    [["--max-message-size", "big"], /--max-message-size/],
    [["--sas-policy", "nokey"], /--sas-policy/],
    [["--hyco", "/"], /--hyco/],
  ];
  for (const [args, why] of cases) {
    await assert.rejects(
      run("relay-server", "--bind", "127.0.0.1:0", "--sas-policy", "a=b", ...args),
      (e: Error) => e instanceof UsageError && why.test(e.message),
      args.join(" "),
    );
  }
});

Deno.test("relay-server: runs until SIGTERM, then returns", async () => {
  const lines: string[] = [];
  const { promise: listening, resolve } = Promise.withResolvers<string>();
  await configureLogging({
    level: "info",
    write: (l) => {
      lines.push(l);
      const m = / url=(ws:\/\/\S+)/.exec(l);
      if (l.includes('msg="relay-server listening"') && m) resolve(m[1]);
    },
  });
  try {
    const running = run(
      "relay-server",
      "--bind",
      "127.0.0.1:0",
      "--sas-policy",
      "a=b:Listen",
      "--hyco",
      "one",
      "--hyco",
      "two",
      "--latency",
      "1ms",
    );
    const url = await listening;
    const health = await fetch(`${url.replace("ws://", "http://")}/healthz`);
    assert.equal(await health.text(), "ok");
    Deno.kill(Deno.pid, "SIGTERM");
    await running;
    assert.ok(lines.some((l) => l.includes('msg="relay-server stopped"')));
  } finally {
    await resetLogging();
  }
});
