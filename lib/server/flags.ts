/**
 * `aztunnel relay-server`'s flags and environment turned into RelayServerOptions: files read,
 * numbers, sizes and durations parsed, secrets resolved (flag > environment), usage errors named
 * after the flag. cmd/relay_server.ts only declares the flags.
 */
import { parseDuration } from "../duration.ts";
import { UsageError } from "../errors.ts";
import type { Logger } from "../observe/log.ts";
import { readFlagFile } from "./flag_file.ts";
import { checkInteger, type RelayServerOptions } from "./options.ts";
import { parseSasPolicyFile, resolvePolicies, type SasPolicy } from "./policy.ts";
import { parseHostPort } from "../net/host_port.ts";
import { selfSignedTls } from "./self_signed.ts";
import { caAsServerWarning, readTls, servesCaCertificate } from "./tls.ts";

/** The flag values as commander gives them (strings; repeatable flags as lists). */
export interface RelayServerFlags {
  bind: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsSelfSigned?: string;
  publicUrl?: string;
  hyco?: string[];
  sasPolicy?: string[];
  sasPolicyFile?: string;
  entraJwtKey?: string;
  entraJwtKeyFile?: string;
  maxListeners: string;
  rendezvousTimeout: string;
  rendezvousUrl?: string;
  rendezvousIdleTimeout: string;
  latency: string;
  maxMessageSize: string;
}

/** Where a flag's value came from (commander's getOptionValueSource: "cli", "env", "default"…). */
export type ValueSource = (key: keyof RelayServerFlags) => string | undefined;

export interface RelayServerConfig {
  /** Everything but `signal` and `logger`, which the command adds. */
  readonly options: RelayServerOptions;
  /** A key made up because none was configured: its export lines go to stdout. */
  readonly generated?: SasPolicy;
  /** With --tls-self-signed: the CA clients trust with --relay-ca-cert (printed on stdout). */
  readonly caFile?: string;
}

/** Resolves the flags; warns on `log` about secrets given on the command line. */
export async function relayServerConfig(
  flags: RelayServerFlags,
  sourceOf: ValueSource,
  env: { get(name: string): string | undefined },
  log: Logger,
): Promise<RelayServerConfig> {
  const { policies, generated } = resolvePolicies({
    flags: flags.sasPolicy,
    file: flags.sasPolicyFile === undefined ? undefined : await readPolicyFile(flags.sasPolicyFile),
    list: env.get("AZTUNNEL_RELAY_SAS_POLICIES"),
  }, env);
  const entraJwtKey = await resolveJwtKey(flags, sourceOf);
  const { tls, caFile } = await resolveTls(flags, log);
  const options: RelayServerOptions = {
    bind: flags.bind,
    tls,
    publicUrl: flags.publicUrl,
    hycos: flags.hyco ?? [],
    policies,
    entraJwtKey,
    maxListeners: parseCount(flags.maxListeners, "--max-listeners"),
    rendezvousTimeoutMs: parseDuration(flags.rendezvousTimeout, "--rendezvous-timeout"),
    rendezvousUrl: flags.rendezvousUrl,
    rendezvousIdleTimeoutMs: parseDuration(
      flags.rendezvousIdleTimeout,
      "--rendezvous-idle-timeout",
    ),
    latencyMs: parseDuration(flags.latency, "--latency"),
    maxMessageSize: parseSize(flags.maxMessageSize, "--max-message-size"),
  };
  if (flags.sasPolicy?.length) {
    warnSecretOnArgv(log, "--sas-policy", "--sas-policy-file or AZTUNNEL_RELAY_SAS_POLICIES");
  }
  if (sourceOf("entraJwtKey") === "cli" && flags.entraJwtKey) {
    warnSecretOnArgv(
      log,
      "--entra-jwt-key",
      "--entra-jwt-key-file or AZTUNNEL_RELAY_ENTRA_JWT_KEY",
    );
  }
  return { options, generated, caFile };
}

/** --tls-cert/--tls-key, or the files --tls-self-signed keeps (the two exclude each other). */
async function resolveTls(
  flags: Pick<RelayServerFlags, "bind" | "tlsCert" | "tlsKey" | "tlsSelfSigned" | "publicUrl">,
  log: Logger,
): Promise<{ tls?: RelayServerOptions["tls"]; caFile?: string }> {
  if (flags.tlsSelfSigned) {
    if (flags.tlsCert || flags.tlsKey) {
      throw new UsageError("--tls-self-signed and --tls-cert/--tls-key exclude each other");
    }
    const made = await selfSignedTls(flags.tlsSelfSigned, certificateHosts(flags));
    log.info("serving wss:// with a self-signed certificate: clients need --relay-ca-cert", {
      ca_cert: made.caFile,
      issued: made.issued,
    });
    return { tls: made.tls, caFile: made.caFile };
  }
  const tls = await readTls(flags.tlsCert, flags.tlsKey);
  if (tls?.certFile && servesCaCertificate(tls.cert)) log.warn(caAsServerWarning(tls.certFile));
  return { tls };
}

/** The names a self-signed server certificate needs besides localhost: bind and public URL hosts. */
function certificateHosts(flags: Pick<RelayServerFlags, "bind" | "publicUrl">): string[] {
  const hosts: string[] = [];
  const bind = parseHostPort(flags.bind)?.hostname ?? "";
  // A wildcard bind is reached by this machine's name.
  if (bind === "" || bind === "0.0.0.0" || bind === "::") hosts.push(Deno.hostname());
  else hosts.push(bind);
  if (flags.publicUrl) {
    try {
      hosts.push(new URL(flags.publicUrl).hostname.replace(/^\[(.*)\]$/, "$1"));
    } catch {
      // settings.ts refuses a malformed --public-url with its own message
    }
  }
  return hosts;
}

function warnSecretOnArgv(log: Logger, flag: string, prefer: string): void {
  log.warn(
    `secret passed on the command line is visible to other local users; prefer ${prefer}`,
    { flag },
  );
}

async function readPolicyFile(file: string): Promise<SasPolicy[]> {
  const policies = parseSasPolicyFile(await readFlagFile(file, "--sas-policy-file"), file);
  if (policies.length === 0) throw new UsageError(`--sas-policy-file ${file}: no policy in file`);
  return policies;
}

/**
 * The HS256 secret: the flag or the file, whichever came from the command line (flags win over the
 * environment); both from the same place is a usage error. An empty value means none.
 */
async function resolveJwtKey(
  flags: Pick<RelayServerFlags, "entraJwtKey" | "entraJwtKeyFile">,
  sourceOf: ValueSource,
): Promise<string | undefined> {
  const direct = flags.entraJwtKey || undefined;
  const file = flags.entraJwtKeyFile || undefined;
  if (direct !== undefined && file !== undefined) {
    const fromCli = (key: keyof RelayServerFlags) => sourceOf(key) === "cli";
    if (fromCli("entraJwtKey") === fromCli("entraJwtKeyFile")) {
      throw new UsageError(
        "--entra-jwt-key and --entra-jwt-key-file (or their environment variables) exclude each other",
      );
    }
    if (fromCli("entraJwtKey")) return direct;
  }
  if (file === undefined) return direct;
  // Editors and `echo` end files with a newline that is no part of the secret.
  const key = (await readFlagFile(file, "--entra-jwt-key-file")).replace(/(?:\r?\n)+$/, "");
  if (key === "") throw new UsageError(`--entra-jwt-key-file ${file}: the file is empty`);
  return key;
}

function parseCount(text: string, flag: string): number {
  if (!/^\d+$/.test(text.trim())) {
    throw new UsageError(`invalid ${flag} "${text}": expected a positive integer`);
  }
  return checkInteger(Number(text), flag, 1);
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  kb: 1000,
  kib: 1024,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
};

/** Bytes as `1048576`, `512KiB`, `16MiB` or `1MB`. */
export function parseSize(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
  const bytes = m && unit ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new UsageError(`invalid ${flag} "${text}": expected a size like 16MiB or 1048576`);
  }
  return bytes;
}
