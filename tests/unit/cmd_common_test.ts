import assert from "node:assert/strict";
import { Command } from "@commander-js/extra-typings";
import {
  drainFlag,
  durationOrDefault,
  halfCloseLingerFlag,
  halfCloseLingerOption,
  parseHostPort,
  readCaCerts,
  refuseInsecureTls,
  requireRelayNames,
  resolveBind,
} from "../../cmd/common.ts";
import { UsageError } from "../../lib/errors.ts";

Deno.test("parseHostPort splits like net.SplitHostPort", () => {
  assert.deepEqual(parseHostPort("127.0.0.1:22", "target"), { hostname: "127.0.0.1", port: 22 });
  assert.deepEqual(parseHostPort("[::1]:2222", "target"), { hostname: "::1", port: 2222 });
  assert.deepEqual(parseHostPort("db.internal:5432", "target"), {
    hostname: "db.internal",
    port: 5432,
  });
  assert.deepEqual(parseHostPort(":5432", "target"), { hostname: "", port: 5432 });
  for (const bad of ["host", "::1:22", "host:", "host:99999", "host:abc", "[::1]"]) {
    assert.throws(() => parseHostPort(bad, "target"), UsageError, bad);
  }
});

Deno.test("resolveBind applies --gateway and empty hosts", () => {
  assert.deepEqual(resolveBind("127.0.0.1:0", false), { hostname: "127.0.0.1", port: 0 });
  assert.deepEqual(resolveBind("127.0.0.1:2222", true), { hostname: "0.0.0.0", port: 2222 });
  assert.deepEqual(resolveBind(":5432", undefined), { hostname: "0.0.0.0", port: 5432 });
});

Deno.test("requireRelayNames checks hyco first, with the Go tool's texts", () => {
  assert.throws(
    () => requireRelayNames({}),
    new UsageError("hybrid connection name is required: use --hyco or set AZTUNNEL_HYCO_NAME"),
  );
  assert.throws(
    () => requireRelayNames({ hyco: "h" }),
    new UsageError("relay namespace is required: use --relay or set AZTUNNEL_RELAY_NAME"),
  );
  assert.deepEqual(requireRelayNames({ namespace: "ns" }, "pos"), { relay: "ns", hyco: "pos" });
  assert.deepEqual(requireRelayNames({ relay: "r", hyco: "flag" }, "pos"), {
    relay: "r",
    hyco: "flag",
  });
});

Deno.test("readCaCerts: a missing or non-PEM file is a usage error naming the file", async () => {
  await assert.rejects(
    readCaCerts("/nonexistent/ca.pem"),
    new UsageError("--relay-ca-cert /nonexistent/ca.pem: no such file"),
  );
  const file = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(file, "not a certificate\n");
    await assert.rejects(
      readCaCerts(file),
      new UsageError(`--relay-ca-cert ${file}: no PEM certificate in file`),
    );
    const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    await Deno.writeTextFile(file, pem);
    assert.deepEqual(await readCaCerts(file), [pem]);
    assert.equal(await readCaCerts(undefined), undefined);
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("--half-close-linger: a duration, 2 s by default, AZTUNNEL_HALF_CLOSE_LINGER as fallback", () => {
  assert.equal(halfCloseLingerFlag(), 2000);
  assert.equal(halfCloseLingerFlag("500ms"), 500);
  assert.equal(halfCloseLingerFlag("0"), 0);
  assert.equal(halfCloseLingerFlag("-1s"), 0);
  assert.throws(() => halfCloseLingerFlag("soon"), UsageError);
  const parse = (args: string[]) =>
    new Command().exitOverride().addOption(halfCloseLingerOption()).parse(args, { from: "user" })
      .opts().halfCloseLinger;
  assert.equal(parse([]), "2s");
  Deno.env.set("AZTUNNEL_HALF_CLOSE_LINGER", "750ms");
  try {
    assert.equal(parse([]), "750ms");
    assert.equal(parse(["--half-close-linger", "5s"]), "5s");
  } finally {
    Deno.env.delete("AZTUNNEL_HALF_CLOSE_LINGER");
  }
});

Deno.test("ports above 65535 are named as such", () => {
  for (
    const [text, why] of [["h:65536", "port 65536 is above 65535"], [
      "h:999999",
      "port 999999 is above 65535",
    ], ["h:x", "expected host:port"]]
  ) {
    assert.throws(
      () => parseHostPort(text, "--bind address"),
      new UsageError(`invalid --bind address "${text}": ${why}`),
    );
  }
});

Deno.test("resolveBind: a bind without a host warns that it takes every interface", () => {
  const warned: [string, Record<string, unknown>][] = [];
  const warn = (m: string, a: Record<string, unknown>) => void warned.push([m, a]);
  assert.deepEqual(resolveBind(":2222", false, warn), { hostname: "0.0.0.0", port: 2222 });
  assert.equal(warned.length, 1);
  assert.equal(
    warned[0][0],
    "--bind without a host listens on every interface (0.0.0.0): anyone who can reach this " +
      "machine can use the tunnel; use 127.0.0.1:2222 to stay local",
  );
  assert.deepEqual(warned[0][1], { bind: ":2222" });
  // Asked for in so many words: no warning.
  resolveBind("0.0.0.0:2222", false, warn);
  resolveBind("127.0.0.1:2222", true, warn);
  resolveBind(":2222", true, warn);
  assert.equal(warned.length, 1);
});

Deno.test("--connect-timeout: 0 means 30 s as in Go, negative is a usage error", () => {
  assert.equal(durationOrDefault("0", "--connect-timeout", 30_000), 30_000);
  assert.equal(durationOrDefault("5s", "--connect-timeout", 30_000), 5_000);
  assert.throws(
    () => durationOrDefault("-1s", "--connect-timeout", 30_000),
    new UsageError('invalid --connect-timeout "-1s": must not be negative (0 = default)'),
  );
});

Deno.test("--drain-timeout: 0 cuts at once, negative is a usage error", () => {
  assert.equal(drainFlag("0"), 0);
  assert.equal(drainFlag("10s"), 10_000);
  assert.throws(
    () => drainFlag("-5s"),
    new UsageError('invalid --drain-timeout "-5s": must not be negative (0 = no drain)'),
  );
});

Deno.test("hyco names that cannot be a path are usage errors naming the name", () => {
  const cases: [string, string][] = [
    ["my hyco", "must not contain spaces or control characters"],
    ["a\tb", "must not contain spaces or control characters"],
    ["../etc", 'must not contain ".."'],
    ["a..b", 'must not contain ".."'],
    ["a?b", 'must not contain "?", "#", "%" or "\\"'],
    ["/lead", 'must not start or end with "/"'],
  ];
  for (const [hyco, why] of cases) {
    assert.throws(
      () => requireRelayNames({ hyco, relay: "r" }),
      new UsageError(`invalid hybrid connection name ${JSON.stringify(hyco)}: ${why}`),
    );
  }
  for (const ok of ["h", "my-hyco_1", "team.a/ssh", "UPPER"]) {
    assert.equal(requireRelayNames({ hyco: ok, relay: "r" }).hyco, ok);
  }
});

Deno.test("--relay-insecure-tls and AZTUNNEL_RELAY_INSECURE_TLS=1 point to --relay-ca-cert", () => {
  const env = (v?: string) => ({
    get: (n: string) => (n === "AZTUNNEL_RELAY_INSECURE_TLS" ? v : undefined),
  });
  const tail = " is not supported: relay certificates are always verified; to trust a private or " +
    "self-signed relay, pass its CA with --relay-ca-cert FILE (or AZTUNNEL_RELAY_CA_CERT)";
  assert.throws(
    () => refuseInsecureTls(true, env()),
    new UsageError(`--relay-insecure-tls${tail}`),
  );
  assert.throws(
    () => refuseInsecureTls(undefined, env("1")),
    new UsageError(`AZTUNNEL_RELAY_INSECURE_TLS=1${tail}`),
  );
  // Only "1" counts, as in Go.
  refuseInsecureTls(undefined, env("true"));
  refuseInsecureTls(undefined, env(""));
  refuseInsecureTls(false, env());
});
