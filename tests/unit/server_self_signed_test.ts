import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { UsageError } from "../../lib/errors.ts";
import { selfSignedTls } from "../../lib/server/self_signed.ts";
import { caAsServerWarning, servesCaCertificate } from "../../lib/server/tls.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "aztunnel-selfsigned-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("selfSignedTls: makes a CA and a server certificate once, then reuses them", async () => {
  await withDir(async (parent) => {
    const dir = `${parent}/tls`;
    const first = await selfSignedTls(dir, ["relay.test"]);
    assert.equal(first.issued, "ca");
    assert.equal(first.caFile, `${await Deno.realPath(dir)}/ca.crt`);
    for (const f of ["ca.crt", "ca.key", "server.crt", "server.key"]) {
      assert.ok((await Deno.stat(`${dir}/${f}`)).isFile, f);
    }
    assert.equal((await Deno.stat(`${dir}/server.key`)).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(`${dir}/ca.key`)).mode! & 0o777, 0o600);
    const leaf = new X509Certificate(await Deno.readTextFile(`${dir}/server.crt`));
    const ca = new X509Certificate(await Deno.readTextFile(first.caFile));
    assert.ok(leaf.verify(ca.publicKey));
    assert.equal(leaf.ca, false);
    for (const h of ["localhost", "relay.test"]) assert.ok(leaf.checkHost(h), h);
    for (const ip of ["127.0.0.1", "::1"]) assert.ok(leaf.checkIP(ip), ip);
    assert.ok(!servesCaCertificate(first.tls.cert), "the chain starts with the server's own");

    const again = await selfSignedTls(dir, ["relay.test"]);
    assert.equal(again.issued, "none");
    assert.equal(again.tls.cert, first.tls.cert);

    // A new host name: a new server certificate, same CA (clients keep their ca.crt).
    const caPem = await Deno.readTextFile(first.caFile);
    const moved = await selfSignedTls(dir, ["other.test"]);
    assert.equal(moved.issued, "server");
    assert.equal(await Deno.readTextFile(moved.caFile), caPem);
    assert.ok(
      new X509Certificate(await Deno.readTextFile(`${dir}/server.crt`)).checkHost("other.test"),
    );

    // Close to its end: issued again.
    const later = await selfSignedTls(dir, ["other.test"], new Date(Date.now() + 380 * 86_400_000));
    assert.equal(later.issued, "server");
  });
});

Deno.test("selfSignedTls: serves wss-grade TLS that trusts only the CA file", async () => {
  await withDir(async (dir) => {
    const made = await selfSignedTls(dir, []);
    const server = Deno.listenTls({ hostname: "127.0.0.1", port: 0, ...made.tls });
    try {
      const hosts = ["localhost", "127.0.0.1"];
      const accepted = (async () => {
        for (const _ of hosts) {
          const c = await server.accept();
          await c.handshake().catch(() => {});
          c.close();
        }
      })();
      const caCerts = [await Deno.readTextFile(made.caFile)];
      for (const hostname of hosts) {
        const client = await Deno.connectTls({ hostname, port: server.addr.port, caCerts });
        await client.handshake();
        client.close();
      }
      await accepted;
    } finally {
      server.close();
    }
  });
});

Deno.test("selfSignedTls: a foreign CA key is a usage error that says how to start over", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/ca.crt`,
      "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
    );
    await Deno.writeTextFile(
      `${dir}/ca.key`,
      "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n",
      // Private, as the directory check requires: what is tested is the key's content.
      { mode: 0o600 },
    );
    await assert.rejects(selfSignedTls(dir, []), (err: unknown) => {
      assert.ok(err instanceof UsageError);
      assert.match(
        err.message,
        /ca\.key is not a P-256 key made by aztunnel .*remove the directory's files/,
      );
      return true;
    });
  });
});

Deno.test("servesCaCertificate: a CA served as the server's own certificate is noticed", async () => {
  await withDir(async (dir) => {
    const made = await selfSignedTls(dir, []);
    const caPem = await Deno.readTextFile(made.caFile);
    assert.equal(servesCaCertificate(caPem), true);
    assert.equal(servesCaCertificate(caPem + made.tls.cert), true);
    assert.equal(servesCaCertificate(made.tls.cert), false);
    assert.equal(servesCaCertificate("not a pem"), false);
    assert.match(
      caAsServerWarning("/x/ca.pem"),
      /^--tls-cert \/x\/ca\.pem is a CA certificate .*--tls-self-signed DIR/,
    );
  });
});
