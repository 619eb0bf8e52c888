/**
 * `relay-server --tls-self-signed DIR`: a private CA and a server certificate signed by it, kept in
 * DIR (ca.crt, ca.key, server.crt, server.key). A later start reuses them, so the `ca.crt` clients
 * were given keeps working; the server certificate is issued again when it no longer covers the
 * relay's host names or is about to expire. Made with WebCrypto (lib/crypto/x509.ts): no openssl.
 */
import { X509Certificate } from "node:crypto";
import {
  certificateKeyIdentifier,
  importSigningKey,
  issueCertificate,
  type Issuer,
} from "../crypto/x509.ts";
import { errorMessage, UsageError } from "../errors.ts";
import { parseIP } from "../tunnel/ip.ts";
import type { RelayTls } from "./options.ts";

const CA_NAME = "aztunnel relay-server CA";
const CA_DAYS = 3650;
const SERVER_DAYS = 397;
/** A server certificate closer than this to its end is replaced at start-up. */
const RENEW_BEFORE_MS = 30 * 86_400_000;
/** Always in the server certificate, whatever the bind: clients on this machine. */
const LOCAL_HOSTS = ["localhost", "127.0.0.1", "::1"];

export interface SelfSignedTls {
  readonly tls: RelayTls;
  /** Absolute path of ca.crt: what clients pass as --relay-ca-cert. */
  readonly caFile: string;
  /** What was made this time: "ca" (everything), "server" (a new server certificate) or none. */
  readonly issued: "ca" | "server" | "none";
}

/** Reads or makes the CA and server certificate in `dir` for `hosts` (names and IP literals). */
export async function selfSignedTls(
  dir: string,
  hosts: readonly string[],
  now = new Date(),
): Promise<SelfSignedTls> {
  const abs = await prepareDir(dir);
  const file = (name: string) => `${abs}/${name}`;
  const want = [...new Set([...LOCAL_HOSTS, ...hosts.map((h) => h.toLowerCase())])];
  let issued: SelfSignedTls["issued"] = "none";
  let ca = await readPair(file("ca.crt"), file("ca.key"));
  if (!ca) {
    const made = await issueCertificate({ commonName: CA_NAME, ca: true, validDays: CA_DAYS, now });
    ca = { cert: made.cert, key: made.key };
    await writePair(file("ca.crt"), file("ca.key"), ca);
    issued = "ca";
  }
  let server = issued === "ca" ? null : await readPair(file("server.crt"), file("server.key"));
  if (!server || !serverCertFits(server.cert, ca.cert, want, now)) {
    const issuer: Issuer = {
      commonName: CA_NAME,
      privateKey: await caKey(ca.key, file("ca.key")),
      keyIdentifier: await caKeyIdentifier(ca.cert, file("ca.crt")),
    };
    const made = await issueCertificate({
      commonName: want.find((h) => !parseIP(h)) ?? "localhost",
      ca: false,
      dnsNames: want.filter((h) => !parseIP(h)),
      ipAddresses: want.map(parseIP).filter((ip): ip is Uint8Array => ip !== null),
      validDays: SERVER_DAYS,
      issuer,
      now,
    });
    server = { cert: made.cert, key: made.key };
    await writePair(file("server.crt"), file("server.key"), server);
    if (issued === "none") issued = "server";
  }
  const tls: RelayTls = {
    // The chain the server sends: its certificate, then the CA (clients trust the CA itself).
    cert: server.cert + ca.cert,
    key: server.key,
    certFile: file("server.crt"),
    keyFile: file("server.key"),
  };
  return { tls, caFile: file("ca.crt"), issued };
}

async function prepareDir(dir: string): Promise<string> {
  let abs: string;
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    abs = await Deno.realPath(dir);
  } catch (err) {
    throw new UsageError(`--tls-self-signed ${dir}: ${errorMessage(err)}`);
  }
  await checkOwnDir(abs, dir);
  return abs;
}

const octal = (mode: number) => (mode & 0o777).toString(8).padStart(4, "0");

/**
 * What is reused from DIR is trusted as the relay's own CA, so DIR must be ours and writable only
 * by us: anyone else who could write there could plant a CA (and key) the relay would then serve.
 * Reading is allowed (ca.crt is public), so this is looser than the agent's 0700 rule
 * (lib/agent/private_dir.ts); ca.key itself must allow no group or other access at all. Refused,
 * never repaired: the files in it may already be someone else's. Windows has no such mode bits.
 */
async function checkOwnDir(abs: string, dir: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  const uid = Deno.uid();
  const flag = `--tls-self-signed ${dir}`;
  const info = await stat(abs, flag);
  if (!info) throw new UsageError(`${flag}: the directory disappeared`);
  if (info.uid !== uid) {
    throw new UsageError(
      `${flag}: owned by uid ${info.uid}, not ${uid}: its CA cannot be trusted; use a directory of your own`,
    );
  }
  const mode = info.mode ?? 0;
  if ((mode & 0o022) !== 0) {
    throw new UsageError(
      `${flag}: mode ${octal(mode)} lets group or others write there, so its CA cannot be ` +
        `trusted: chmod go-w ${abs} (and check its files), or use a new directory`,
    );
  }
  const key = await stat(`${abs}/ca.key`, flag);
  if (!key) return;
  if (key.uid !== uid || ((key.mode ?? 0) & 0o077) !== 0) {
    throw new UsageError(
      `${flag}: ${abs}/ca.key must be owned by uid ${uid} with no group or other access ` +
        `(it is uid ${key.uid}, mode ${
          octal(key.mode ?? 0)
        }); remove the directory's files to start over`,
    );
  }
}

/** lstat, or null when the path does not exist; other failures are usage errors. */
async function stat(path: string, flag: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw new UsageError(`${flag}: ${errorMessage(err)}`);
  }
}

interface Pair {
  cert: string;
  key: string;
}

/** Both files, or null when either is missing; any other read failure is a usage error. */
async function readPair(certFile: string, keyFile: string): Promise<Pair | null> {
  try {
    return { cert: await Deno.readTextFile(certFile), key: await Deno.readTextFile(keyFile) };
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw new UsageError(`--tls-self-signed: ${errorMessage(err)}`);
  }
}

async function writePair(certFile: string, keyFile: string, pair: Pair): Promise<void> {
  try {
    await Deno.writeTextFile(keyFile, pair.key, { mode: 0o600 });
    await Deno.writeTextFile(certFile, pair.cert, { mode: 0o644 });
  } catch (err) {
    throw new UsageError(`--tls-self-signed: ${errorMessage(err)}`);
  }
}

async function caKey(pem: string, file: string): Promise<CryptoKey> {
  try {
    return await importSigningKey(pem);
  } catch (err) {
    throw new UsageError(
      `--tls-self-signed: ${file} is not a P-256 key made by aztunnel (${errorMessage(err)}); ` +
        "remove the directory's files to start over",
    );
  }
}

async function caKeyIdentifier(pem: string, file: string): Promise<Uint8Array> {
  try {
    return await certificateKeyIdentifier(pem);
  } catch (err) {
    throw new UsageError(
      `--tls-self-signed: ${file} is not a P-256 certificate made by aztunnel (${
        errorMessage(err)
      }); remove the directory's files to start over`,
    );
  }
}

/** Signed by `caPem`, valid past the renewal margin, and naming every host in `hosts`. */
function serverCertFits(certPem: string, caPem: string, hosts: string[], now: Date): boolean {
  try {
    const cert = new X509Certificate(certPem);
    const ca = new X509Certificate(caPem);
    if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return false;
    if (new Date(cert.validTo).getTime() - now.getTime() < RENEW_BEFORE_MS) return false;
    return hosts.every((h) =>
      parseIP(h) ? cert.checkIP(h) !== undefined : cert.checkHost(h) !== undefined
    );
  } catch {
    return false;
  }
}
