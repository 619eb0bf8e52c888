/** `aztunnel relay-server`: a local Hybrid Connections–compatible relay (lib/server). */
import { type Command, Option } from "@commander-js/extra-typings";
import { parseDuration } from "../lib/duration.ts";
import { UsageError } from "../lib/errors.ts";
import { registerRelayServerMetrics } from "../lib/observe/metrics.ts";
import type { Readiness } from "../lib/observe/ops_server.ts";
import { type RelayServer, resolvePolicies, startRelayServer } from "../lib/server/mod.ts";
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
      new Option("--entra-jwt-key <secret>", "accept HS256 JWTs signed with this secret").env(
        "AZTUNNEL_RELAY_ENTRA_JWT_KEY",
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
Keys: --sas-policy rules; else AZTUNNEL_KEY_NAME/AZTUNNEL_KEY (all rights); else a random key is
generated and the matching export lines are printed on stdout.

Example:
  aztunnel relay-server --bind 127.0.0.1:8080 --hyco demo
  aztunnel relay-listener --relay ws://127.0.0.1:8080 --hyco demo --allow 127.0.0.1:22`,
    )
    .action(async (flags, cmd) => {
      const { policies, generated } = resolvePolicies(flags.sasPolicy ?? [], Deno.env);
      const tls = await readTls(flags.tlsCert, flags.tlsKey);
      const options = {
        bind: flags.bind,
        tls,
        publicUrl: flags.publicUrl,
        hycos: flags.hyco ?? [],
        policies,
        entraJwtKey: flags.entraJwtKey,
        maxListeners: parseCount(flags.maxListeners, "--max-listeners"),
        rendezvousTimeoutMs: parseDuration(flags.rendezvousTimeout, "--rendezvous-timeout"),
        latencyMs: parseDuration(flags.latency, "--latency"),
        maxMessageSize: parseSize(flags.maxMessageSize, "--max-message-size"),
      };
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

async function readTls(
  certFile: string | undefined,
  keyFile: string | undefined,
): Promise<{ cert: string; key: string } | undefined> {
  if (!certFile && !keyFile) return undefined;
  if (!certFile || !keyFile) {
    throw new UsageError("--tls-cert and --tls-key must be given together");
  }
  const read = async (file: string, flag: string, marker: string) => {
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch (err) {
      throw new UsageError(`${flag} ${file}: ${(err as Error).message}`);
    }
    if (!text.includes(marker)) throw new UsageError(`${flag} ${file}: no PEM ${marker} in file`);
    return text;
  };
  return {
    cert: await read(certFile, "--tls-cert", "CERTIFICATE"),
    key: await read(keyFile, "--tls-key", "PRIVATE KEY"),
  };
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
