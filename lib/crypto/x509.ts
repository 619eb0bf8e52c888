/**
 * X.509 v3 certificates with ECDSA P-256 keys, made with WebCrypto and lib/crypto/der.ts: a CA,
 * and server (leaf) certificates signed by it. Enough for a private relay; no npm package, no
 * openssl.
 */
import { X509Certificate } from "node:crypto";
import { decodeBase64, encodeBase64 } from "./base64.ts";
import {
  bitString,
  boolean,
  explicit,
  implicit,
  octetString,
  oid,
  sequence,
  set,
  smallInteger,
  time,
  unsignedInteger,
  utf8String,
} from "./der.ts";

const ECDSA = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGN = { name: "ECDSA", hash: "SHA-256" } as const;
const ECDSA_WITH_SHA256 = sequence(oid("1.2.840.10045.4.3.2"));
const DAY_MS = 86_400_000;

export interface IssuedCertificate {
  /** PEM of the certificate. */
  readonly cert: string;
  /** PEM (PKCS #8) of its private key. */
  readonly key: string;
  readonly keys: CryptoKeyPair;
}

/** Who signs: the CA's name, private key and key identifier (`certificateKeyIdentifier`). */
export interface Issuer {
  readonly commonName: string;
  readonly privateKey: CryptoKey;
  /**
   * The CA's subjectKeyIdentifier, the leaf's authorityKeyIdentifier: RFC 5280 §4.2.1.1 requires
   * it, and strict verifiers (`openssl verify -x509_strict`, Python 3.13's default context) refuse
   * a chain without it.
   */
  readonly keyIdentifier: Uint8Array;
}

export interface CertificateRequest {
  readonly commonName: string;
  /** A CA (keyCertSign, pathLen 0) or a TLS server certificate (serverAuth). */
  readonly ca: boolean;
  /** For a server certificate: the DNS names of its subjectAltName. */
  readonly dnsNames?: readonly string[];
  /** For a server certificate: its IP addresses (4 or 16 bytes each). */
  readonly ipAddresses?: readonly Uint8Array[];
  readonly validDays: number;
  /** Absent: self-signed. */
  readonly issuer?: Issuer;
  readonly now?: Date;
}

/** A new key pair and its certificate. */
export async function issueCertificate(req: CertificateRequest): Promise<IssuedCertificate> {
  const keys = await crypto.subtle.generateKey(ECDSA, true, ["sign", "verify"]);
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", keys.publicKey));
  const keyId = await keyIdentifier(keys.publicKey);
  const now = req.now ?? new Date();
  const tbs = sequence(
    explicit(0, smallInteger(2)),
    unsignedInteger(serialNumber()),
    ECDSA_WITH_SHA256,
    name(req.issuer?.commonName ?? req.commonName),
    // Back-dated an hour: a client whose clock is a little behind must not see "not yet valid".
    sequence(
      time(new Date(now.getTime() - 3_600_000)),
      time(new Date(now.getTime() + req.validDays * DAY_MS)),
    ),
    name(req.commonName),
    spki,
    explicit(3, sequence(...extensions(req, keyId))),
  );
  const signer = req.issuer?.privateKey ?? keys.privateKey;
  const raw = new Uint8Array(await crypto.subtle.sign(SIGN, signer, tbs));
  const der = sequence(tbs, ECDSA_WITH_SHA256, bitString(ecdsaDer(raw)));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  return { cert: pem("CERTIFICATE", der), key: pem("PRIVATE KEY", pkcs8), keys };
}

/** The private key of a PEM PKCS #8 P-256 key, for signing (a CA kept from an earlier run). */
export async function importSigningKey(pemText: string): Promise<CryptoKey> {
  const body = pemText.replace(/-----(BEGIN|END) PRIVATE KEY-----|\s/g, "");
  const der = decodeBase64(body);
  if (der === null) throw new Error("Failed to decode base64");
  return await crypto.subtle.importKey("pkcs8", der, ECDSA, false, ["sign"]);
}

/** The key identifier of a certificate's public key (an Issuer's `keyIdentifier`). */
export async function certificateKeyIdentifier(certPem: string): Promise<Uint8Array> {
  const spki = new X509Certificate(certPem).publicKey.export({ format: "der", type: "spki" });
  const key = await crypto.subtle.importKey("spki", new Uint8Array(spki), ECDSA, true, ["verify"]);
  return await keyIdentifier(key);
}

/**
 * RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING's contents, which for an
 * EC key is the uncompressed point WebCrypto exports as "raw". What openssl computes too, so a CA
 * made elsewhere with the same key would match.
 */
async function keyIdentifier(publicKey: CryptoKey): Promise<Uint8Array> {
  const point = await crypto.subtle.exportKey("raw", publicKey);
  return new Uint8Array(await crypto.subtle.digest("SHA-1", point));
}

function extensions(req: CertificateRequest, keyId: Uint8Array): Uint8Array[] {
  const ext = (id: string, critical: boolean, value: Uint8Array) =>
    sequence(oid(id), ...(critical ? [boolean(true)] : []), octetString(value));
  // subjectKeyIdentifier: in every certificate (RFC 5280 §4.2.1.2 requires it for a CA, and
  // recommends it for the rest).
  const ski = ext("2.5.29.14", false, octetString(keyId));
  if (req.ca) {
    return [
      ski,
      // cA TRUE, pathLenConstraint 0: it signs server certificates only.
      ext("2.5.29.19", true, sequence(boolean(true), smallInteger(0))),
      // keyCertSign (bit 5) and cRLSign (bit 6): 0b0000_0110, the last bit unused.
      ext("2.5.29.15", true, bitString(new Uint8Array([0x06]), 1)),
    ];
  }
  return [
    ski,
    // authorityKeyIdentifier { keyIdentifier [0] }: which CA key signed it (RFC 5280 §4.2.1.1);
    // a self-signed leaf names its own key.
    ext("2.5.29.35", false, sequence(implicit(0, req.issuer?.keyIdentifier ?? keyId))),
    ext("2.5.29.19", true, sequence()),
    // digitalSignature (bit 0) only: 0b1000_0000, seven bits unused.
    ext("2.5.29.15", true, bitString(new Uint8Array([0x80]), 7)),
    ext("2.5.29.37", false, sequence(oid("1.3.6.1.5.5.7.3.1"))),
    // subjectAltName: dNSName is [2], iPAddress [7].
    ext(
      "2.5.29.17",
      false,
      sequence(
        ...(req.dnsNames ?? []).map((n) => implicit(2, new TextEncoder().encode(n))),
        ...(req.ipAddresses ?? []).map((ip) => implicit(7, ip)),
      ),
    ),
  ];
}

function name(commonName: string): Uint8Array {
  return sequence(set(sequence(oid("2.5.4.3"), utf8String(commonName))));
}

/** 16 random bytes, top bit clear: positive and unique enough (RFC 5280 allows up to 20). */
function serialNumber(): Uint8Array {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] &= 0x7f;
  bytes[0] |= 0x01;
  return bytes;
}

/** WebCrypto's r‖s (IEEE P1363) as the DER SEQUENCE { r INTEGER, s INTEGER } X.509 wants. */
function ecdsaDer(raw: Uint8Array): Uint8Array {
  const half = raw.length / 2;
  return sequence(unsignedInteger(raw.subarray(0, half)), unsignedInteger(raw.subarray(half)));
}

function pem(label: string, der: Uint8Array): string {
  const b64 = encodeBase64(der);
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}
