import assert from "node:assert/strict";
import { Command } from "@commander-js/extra-typings";
import {
  halfCloseLingerFlag,
  halfCloseLingerOption,
  parseHostPort,
  readCaCerts,
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
