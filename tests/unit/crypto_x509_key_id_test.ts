/** RFC 5280 key identifiers: the CA's subjectKeyIdentifier, the leaf's authorityKeyIdentifier. */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import {
  certificateKeyIdentifier,
  importSigningKey,
  issueCertificate,
} from "../../lib/crypto/x509.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

function derOf(pem: string): Uint8Array {
  const body = pem.replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, "");
  return Uint8Array.from(atob(body), (c) => c.charCodeAt(0));
}

/** SHA-1 of the EC point: the 65 bytes that end a P-256 SubjectPublicKeyInfo. */
async function expectedKeyId(pem: string): Promise<string> {
  const spki = new X509Certificate(pem).publicKey.export({ format: "der", type: "spki" });
  const point = new Uint8Array(spki).slice(-65);
  assert.equal(point[0], 0x04, "uncompressed point");
  return hex(new Uint8Array(await crypto.subtle.digest("SHA-1", point)));
}

async function chain() {
  const ca = await issueCertificate({ commonName: "test CA", ca: true, validDays: 30 });
  const leaf = await issueCertificate({
    commonName: "localhost",
    ca: false,
    dnsNames: ["localhost"],
    validDays: 10,
    issuer: {
      commonName: "test CA",
      privateKey: await importSigningKey(ca.key),
      keyIdentifier: await certificateKeyIdentifier(ca.cert),
    },
  });
  return { ca, leaf };
}

Deno.test("x509 key ids: SKI in both certificates, the leaf's AKI is the CA's SKI (DER)", async () => {
  const { ca, leaf } = await chain();
  const caId = await expectedKeyId(ca.cert);
  const leafId = await expectedKeyId(leaf.cert);
  // Extension { OID 2.5.29.14, OCTET STRING { OCTET STRING (20 bytes) } }.
  const ski = (id: string) => `0603551d0e` + `0416` + `0414` + id;
  // Extension { OID 2.5.29.35, OCTET STRING { SEQUENCE { [0] (20 bytes) } } }.
  const aki = (id: string) => `0603551d23` + `0418` + `3016` + `8014` + id;
  const caDer = hex(derOf(ca.cert));
  const leafDer = hex(derOf(leaf.cert));
  assert.ok(caDer.includes(ski(caId)), "CA subjectKeyIdentifier");
  assert.ok(!caDer.includes("0603551d23"), "the CA has no authorityKeyIdentifier");
  assert.ok(leafDer.includes(ski(leafId)), "leaf subjectKeyIdentifier");
  assert.ok(leafDer.includes(aki(caId)), "leaf authorityKeyIdentifier = the CA's SKI");
  assert.equal(hex(await certificateKeyIdentifier(ca.cert)), caId);
});

const openssl = (() => {
  try {
    return new Deno.Command("openssl", { args: ["version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "x509 key ids: openssl verify -x509_strict accepts the chain",
  ignore: !openssl,
  async fn() {
    if (!openssl) console.log("skipped: no openssl on PATH");
    const { ca, leaf } = await chain();
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/ca.crt`, ca.cert);
      await Deno.writeTextFile(`${dir}/server.crt`, leaf.cert);
      const out = await new Deno.Command("openssl", {
        args: ["verify", "-x509_strict", "-CAfile", `${dir}/ca.crt`, `${dir}/server.crt`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      assert.ok(out.success, text);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
