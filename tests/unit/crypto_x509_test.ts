import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { bitString, oid, time, tlv, unsignedInteger } from "../../lib/crypto/der.ts";
import {
  certificateKeyIdentifier,
  importSigningKey,
  issueCertificate,
} from "../../lib/crypto/x509.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("der: lengths, integers, OIDs, bit strings and times as X.690 writes them", () => {
  assert.equal(hex(tlv(0x04, new Uint8Array(3))), "0403000000");
  assert.equal(hex(tlv(0x04, new Uint8Array(200))).slice(0, 6), "0481c8");
  assert.equal(hex(tlv(0x04, new Uint8Array(300))).slice(0, 8), "0482012c");
  assert.equal(hex(unsignedInteger(new Uint8Array([0, 0, 5]))), "020105");
  assert.equal(hex(unsignedInteger(new Uint8Array([0x80]))), "02020080");
  assert.equal(hex(unsignedInteger(new Uint8Array([0]))), "020100");
  assert.equal(hex(oid("1.2.840.10045.4.3.2")), "06082a8648ce3d040302");
  assert.equal(hex(oid("2.5.29.19")), "0603551d13");
  assert.equal(hex(bitString(new Uint8Array([0x06]), 1)), "03020106");
  const ascii = (b: Uint8Array) => new TextDecoder().decode(b.subarray(2));
  assert.equal(ascii(time(new Date("2026-12-03T07:04:21.500Z"))), "261203070421Z");
  assert.equal(time(new Date("2026-01-01T00:00:00Z"))[0], 0x17);
  const late = time(new Date("2051-06-30T23:59:59Z"));
  assert.equal(late[0], 0x18);
  assert.equal(ascii(late), "20510630235959Z");
});

Deno.test("x509: a CA and a server certificate that openssl-grade checks and rustls accept", async () => {
  const ca = await issueCertificate({ commonName: "test CA", ca: true, validDays: 30 });
  const leaf = await issueCertificate({
    commonName: "localhost",
    ca: false,
    dnsNames: ["localhost", "relay.test"],
    ipAddresses: [new Uint8Array([127, 0, 0, 1])],
    validDays: 10,
    issuer: {
      commonName: "test CA",
      privateKey: await importSigningKey(ca.key),
      keyIdentifier: await certificateKeyIdentifier(ca.cert),
    },
  });
  const caX = new X509Certificate(ca.cert);
  const leafX = new X509Certificate(leaf.cert);
  assert.equal(caX.ca, true);
  assert.equal(leafX.ca, false);
  assert.ok(caX.verify(caX.publicKey), "the CA is self-signed");
  assert.ok(leafX.checkIssued(caX) && leafX.verify(caX.publicKey), "the CA signed the leaf");
  assert.equal(leafX.subjectAltName, "DNS:localhost, DNS:relay.test, IP Address:127.0.0.1");
  const days = (new Date(leafX.validTo).getTime() - Date.now()) / 86_400_000;
  assert.ok(days > 9.9 && days <= 10, String(days));

  // A real handshake: Deno's TLS client trusts the leaf through the CA alone.
  const server = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: leaf.cert, key: leaf.key });
  try {
    const accepted = server.accept().then(async (c) => {
      await c.handshake();
      await c.write(new Uint8Array([42]));
      c.close();
    });
    const client = await Deno.connectTls({
      hostname: "127.0.0.1",
      port: server.addr.port,
      caCerts: [ca.cert],
    });
    const buf = new Uint8Array(1);
    assert.equal(await client.read(buf), 1);
    assert.equal(buf[0], 42);
    client.close();
    await accepted;
  } finally {
    server.close();
  }
});
