/** `aztunnel relay-server`: a local Hybrid Connections–compatible relay (lib/server). */
import { type Command, Option } from "@commander-js/extra-typings";
import { parseDuration } from "../lib/duration.ts";
import { errorMessage, UsageError } from "../lib/errors.ts";
import { getLogger, type Logger } from "../lib/observe/log.ts";
import { registerRelayServerMetrics } from "../lib/observe/metrics.ts";
import type { Readiness } from "../lib/observe/ops_server.ts";
import {
  parseSasPolicyFile,
  type RelayServer,
  type RelayTls,
  resolvePolicies,
  type SasPolicy,
  startRelayServer,
} from "../lib/server/mod.ts";
import { checkInteger, DEFAULT_BIND, DEFAULT_MAX_LISTENERS } from "../lib/server/options.ts";
import { relayServerCounts, runWithOps } from "./ops.ts";

// No commander default: it would print "(default: [])" in the help.
const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

export function register(program: Command): void {
  program
    .command("relay-server")
    .description(
      "run a local relay compatible with Azure Relay Hybrid Connections (ws:// or wss://)",
    )
    .addOption(
      new Option("--bind <addr>", "listen address host:port").env("AZTUNNEL_RELAY_BIND").default(
        DEFAULT_BIND,
      ),
    )
    .addOption(
      new Option("--tls-cert <file>", "PEM certificate chain: serve wss://").env(
        "AZTUNNEL_RELAY_TLS_CERT",
      ),
    )
    .addOption(
      new Option("--tls-key <file>", "PEM private key for --tls-cert").env(
        "AZTUNNEL_RELAY_TLS_KEY",
      ),
    )
    .addOption(
      new Option(
        "--public-url <url>",
        "scheme and host put into accept addresses (required when --bind is not loopback)",
      ).env("AZTUNNEL_RELAY_PUBLIC_URL"),
    )
    .addOption(
      new Option("--hyco <name>", "hybrid connection to serve (repeatable; none = any name)")
        .argParser(collect),
    )
    .addOption(
      new Option("--sas-policy <policy>", "SAS rule NAME=KEY[:Listen,Send,Manage] (repeatable)")
        .argParser(collect),
    )
    .addOption(
      new Option(
        "--sas-policy-file <file>",
        "SAS rules, one NAME=KEY[:rights] per line (# comments)",
      )
        .env("AZTUNNEL_RELAY_SAS_POLICY_FILE"),
    )
    .addOption(
      new Option("--entra-jwt-key <secret>", "accept HS256 JWTs signed with this secret").env(
        "AZTUNNEL_RELAY_ENTRA_JWT_KEY",
      ),
    )
    .addOption(
      new Option("--entra-jwt-key-file <file>", "read the --entra-jwt-key secret from a file").env(
        "AZTUNNEL_RELAY_ENTRA_JWT_KEY_FILE",
      ),
    )
    .addOption(
      new Option("--max-listeners <n>", "listeners per hybrid connection").default(
        String(DEFAULT_MAX_LISTENERS),
      ),
    )
    .addOption(
      new Option("--rendezvous-timeout <duration>", "how long a sender waits for its listener")
        .env("AZTUNNEL_RELAY_RENDEZVOUS_TIMEOUT").default("30s"),
    )
    .addOption(
      new Option(
        "--rendezvous-url <url>",
        "ws(s)://host:port named in accept addresses and bound for rendezvous dials only " +
          "(a second address, like Azure's gateway hosts)",
      ).env("AZTUNNEL_RELAY_RENDEZVOUS_URL"),
    )
    .addOption(
      new Option(
        "--rendezvous-idle-timeout <duration>",
        "drop a bridged connection with no traffic (pings count) for this long",
      ).default("120s"),
    )
    .addOption(
      new Option("--latency <duration>", "one-way delay added on each hop (simulate a region)")
        .default("0"),
    )
    .addOption(
      new Option("--max-message-size <bytes>", "largest WebSocket message (e.g. 16MiB)").default(
        "16MiB",
      ),
    )
    .addHelpText(
      "after",
      `
Keys: --sas-policy and --sas-policy-file rules; else AZTUNNEL_RELAY_SAS_POLICIES (NAME=KEY[:rights]
entries separated by ";"); else AZTUNNEL_KEY_NAME/AZTUNNEL_KEY (all rights); else a random key is
generated and the matching export lines are printed on stdout. Rights are Listen, Send and Manage
(any case, comma-separated, default all); a key containing ":" needs an explicit rights suffix
(NAME=a:b:Listen,Send). Secrets on the command line are visible to other local users: prefer the
file flags or the environment.

Example:
  aztunnel relay-server --bind 127.0.0.1:8080 --hyco demo
  aztunnel relay-listener --relay ws://127.0.0.1:8080 --hyco demo --allow 127.0.0.1:22`,
    )
    .action(async (flags, cmd) => {
      const log = getLogger();
      const { policies, generated } = resolvePolicies({
        flags: flags.sasPolicy,
        file: flags.sasPolicyFile === undefined
          ? undefined
          : await readPolicyFile(flags.sasPolicyFile),
        list: Deno.env.get("AZTUNNEL_RELAY_SAS_POLICIES"),
      }, Deno.env);
      const entraJwtKey = await resolveJwtKey(flags, cmd);
      const tls = await readTls(flags.tlsCert, flags.tlsKey);
      const options = {
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
      if (cmd.getOptionValueSource("entraJwtKey") === "cli" && flags.entraJwtKey) {
        warnSecretOnArgv(
          log,
          "--entra-jwt-key",
          "--entra-jwt-key-file or AZTUNNEL_RELAY_ENTRA_JWT_KEY",
        );
      }
      let server: RelayServer | undefined;
      const readiness = (): Readiness =>
        server ? { ready: true } : { ready: false, reason: "relay server not listening" };
      await runWithOps(cmd, { readiness }, async (ops) => {
        server = await startRelayServer({ ...options, signal: ops.signal });
        const running = server;
        if (ops.metrics) {
          registerRelayServerMetrics(
            ops.metrics.registry,
            () => relayServerCounts(running.stats()),
          );
        }
        if (generated) {
          await writeStdout(
            `export AZTUNNEL_KEY_NAME=${generated.name}\n` +
              `export AZTUNNEL_KEY=${generated.key}\n` +
              `export AZTUNNEL_RELAY_NAME=${server.url}\n`,
          );
        }
        await server.finished;
      });
    });
}

function warnSecretOnArgv(log: Logger, flag: string, prefer: string): void {
  log.warn(
    `secret passed on the command line is visible to other local users; prefer ${prefer}`,
    { flag },
  );
}

async function readFlagFile(file: string, flag: string): Promise<string> {
  try {
    return await Deno.readTextFile(file);
  } catch (err) {
    throw new UsageError(`${flag} ${file}: ${errorMessage(err)}`);
  }
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
  flags: { entraJwtKey?: string; entraJwtKeyFile?: string },
  cmd: { getOptionValueSource(key: string): string | undefined },
): Promise<string | undefined> {
  const direct = flags.entraJwtKey || undefined;
  const file = flags.entraJwtKeyFile || undefined;
  if (direct !== undefined && file !== undefined) {
    const fromCli = (key: string) => cmd.getOptionValueSource(key) === "cli";
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

/**
 * Reads --tls-cert/--tls-key and checks that they hold the PEM blocks Deno wants; startRelayServer
 * checks them the way Deno will use them, naming the files, before anything listens.
 */
async function readTls(
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

async function writeStdout(text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  let off = 0;
  while (off < bytes.length) off += await Deno.stdout.write(bytes.subarray(off));
}
