/**
 * The relay's TLS certificate chain and key: read from `--tls-cert`/`--tls-key`, and checked the way
 * Deno will use them before anything listens, so a bad file is reported as such.
 */
import { X509Certificate } from "node:crypto";
import { errorMessage, UsageError } from "../errors.ts";
import { readFlagFile } from "./flag_file.ts";
import type { RelayTls } from "./options.ts";

/** Reads --tls-cert/--tls-key and checks that they hold the PEM blocks Deno wants. */
export async function readTls(
  certFile: string | undefined,
  keyFile: string | undefined,
): Promise<RelayTls | undefined> {
  if (!certFile && !keyFile) return undefined;
  if (!certFile || !keyFile) {
    throw new UsageError("--tls-cert and --tls-key must be given together");
  }
  const cert = await readFlagFile(certFile, "--tls-cert");
  const key = await readFlagFile(keyFile, "--tls-key");
  if (!cert.includes("-----BEGIN CERTIFICATE-----")) {
    throw new UsageError(`--tls-cert ${certFile}: no PEM certificate in file`);
  }
  if (key.includes("-----BEGIN ENCRYPTED PRIVATE KEY-----")) {
    throw new UsageError(`--tls-key ${keyFile}: encrypted private keys are not supported`);
  }
  if (!/-----BEGIN (?:RSA |EC )?PRIVATE KEY-----/.test(key)) {
    throw new UsageError(`--tls-key ${keyFile}: no PEM private key in file`);
  }
  return { cert, key, certFile, keyFile };
}

/**
 * True when the chain's first certificate, the server's own, is a CA (basicConstraints CA:TRUE, as
 * `openssl req -x509` makes by default): every TLS client refuses it ("CaUsedAsEndEntity").
 */
export function servesCaCertificate(certPem: string): boolean {
  const first = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/.exec(certPem);
  if (!first) return false;
  try {
    return new X509Certificate(first[0]).ca;
  } catch {
    // Unparsable: checkTls's probe listen reports it.
    return false;
  }
}

/** The WARN text for `servesCaCertificate`. */
export function caAsServerWarning(certFile: string): string {
  return `--tls-cert ${certFile} is a CA certificate (basicConstraints CA:TRUE, what ` +
    "`openssl req -x509` makes by default): TLS clients refuse a CA as the server's own " +
    "certificate (CaUsedAsEndEntity); serve a certificate signed by that CA, or let " +
    "--tls-self-signed DIR make both";
}

/**
 * Throws a UsageError when Deno would refuse to serve with this certificate chain and key, naming
 * the files when they are known. Deno has no API to check them apart from a listen, and it checks
 * them before binding; a probe on an ephemeral loopback port finds the problem without touching the
 * real address, so a bad file is reported as such and not as a listen failure.
 */
export function checkTls(tls: RelayTls): void {
  const problem = tlsProblem(tls);
  if (!problem) return;
  const { part, message } = problem;
  const { certFile, keyFile } = tls;
  if (part === "cert") {
    throw new UsageError(
      certFile !== undefined
        ? `--tls-cert ${certFile}: ${message}`
        : `invalid TLS certificate: ${message}`,
    );
  }
  if (part === "key") {
    throw new UsageError(
      keyFile !== undefined ? `--tls-key ${keyFile}: ${message}` : `invalid TLS key: ${message}`,
    );
  }
  throw new UsageError(
    certFile !== undefined && keyFile !== undefined
      ? `--tls-key ${keyFile} does not match --tls-cert ${certFile}: ${message}`
      : `TLS key and certificate do not match: ${message}`,
  );
}

/** What Deno finds wrong with the certificate chain, the key, or the two together, if anything. */
function tlsProblem(
  tls: RelayTls,
): { readonly part: "cert" | "key" | "mismatch"; readonly message: string } | undefined {
  let probe: Deno.TlsListener;
  try {
    probe = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: tls.cert, key: tls.key });
  } catch (err) {
    // The probe itself could not bind: the PEMs passed, and the real listen will speak for itself.
    if (
      err instanceof Deno.errors.AddrInUse || err instanceof Deno.errors.AddrNotAvailable ||
      err instanceof Deno.errors.PermissionDenied || err instanceof Deno.errors.NotCapable
    ) return undefined;
    const message = errorMessage(err);
    // Deno's messages are the only classification there is; an unknown one blames both files.
    if (/KeyMismatch|not be consistent/i.test(message)) return { part: "mismatch", message };
    if (/private key|no keys/i.test(message)) return { part: "key", message };
    if (/certificate/i.test(message)) return { part: "cert", message };
    return { part: "mismatch", message };
  }
  probe.close();
  return undefined;
}
