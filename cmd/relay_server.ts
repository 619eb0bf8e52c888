/** `aztunnel relay-server`: a local Hybrid Connections–compatible relay (lib/server). */
import { type Command, Option } from "@commander-js/extra-typings";
import { writeAll } from "../lib/net/write_all.ts";
import { getLogger } from "../lib/observe/log.ts";
import { registerRelayServerMetrics } from "../lib/observe/metrics.ts";
import type { Readiness } from "../lib/observe/ops_server.ts";
import { relayServerConfig, type RelayServerFlags } from "../lib/server/flags.ts";
import { type RelayServer, startRelayServer } from "../lib/server/mod.ts";
import { DEFAULT_BIND, DEFAULT_MAX_LISTENERS } from "../lib/server/options.ts";
import { relayServerCounts, runWithOps } from "./ops.ts";

// No commander default: it would print "(default: [])" in the help.
const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

/** Where relay-server listens and what it serves. */
function addListenOptions<Args extends unknown[], Opts extends Record<string, unknown>>(
  cmd: Command<Args, Opts>,
) {
  return cmd
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
        "--tls-self-signed <dir>",
        "serve wss:// with a CA and certificate made (once) in <dir>; clients pass <dir>/ca.crt " +
          "as --relay-ca-cert",
      ).env("AZTUNNEL_RELAY_TLS_SELF_SIGNED"),
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
    );
}

/** Who may connect, and how the relay treats connections. */
function addPolicyOptions<Args extends unknown[], Opts extends Record<string, unknown>>(
  cmd: Command<Args, Opts>,
) {
  return cmd
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
    );
}

export function register(program: Command): void {
  const command = program
    .command("relay-server")
    .description(
      "run a local relay compatible with Azure Relay Hybrid Connections (ws:// or wss://)",
    );
  addPolicyOptions(addListenOptions(command))
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
  aztunnel relay-listener --relay ws://127.0.0.1:8080 --hyco demo --allow 127.0.0.1:22

wss:// with a private CA kept in a directory (made on the first start, reused after):
  aztunnel relay-server --bind 127.0.0.1:8443 --hyco demo --tls-self-signed ./relay-tls
  aztunnel relay-listener --relay wss://127.0.0.1:8443 --relay-ca-cert ./relay-tls/ca.crt ...`,
    )
    .action((flags, cmd) => runRelayServer(flags, cmd));
}

async function runRelayServer(flags: RelayServerFlags, cmd: Command): Promise<void> {
  const { options, generated, caFile } = await relayServerConfig(
    flags,
    (key) => cmd.getOptionValueSource(key),
    Deno.env,
    getLogger(),
  );
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
      await writeAll(
        Deno.stdout,
        new TextEncoder().encode(
          `export AZTUNNEL_KEY_NAME=${generated.name}\n` +
            `export AZTUNNEL_KEY=${generated.key}\n` +
            `export AZTUNNEL_RELAY_NAME=${server.url}\n` +
            // One served name is the one every client wants; with none or several, they choose.
            (options.hycos?.length === 1 ? `export AZTUNNEL_HYCO_NAME=${options.hycos[0]}\n` : ""),
        ),
      );
    }
    if (caFile) {
      // The same setting as --relay-ca-cert, in the form the lines above use.
      await writeAll(
        Deno.stdout,
        new TextEncoder().encode(`export AZTUNNEL_RELAY_CA_CERT=${caFile}\n`),
      );
    }
    await server.finished;
  });
}
