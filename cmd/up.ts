/**
 * `up -c FILE`: every listener and tunnel of a YAML file in one process. `--check` validates and
 * prints one line per entry; SIGHUP re-reads the file (lib/config/supervisor.ts).
 *
 * Precedence is flag > environment > file > default. "Flag" means an option on this command line:
 * `up`'s own `--relay`, `--hyco`, `--relay-suffix`, `--relay-ca-cert` and the global `--log-level`,
 * `--log-format`, `--metrics-addr`, `--metrics-max-targets` (before or after `up`). Given as a flag
 * or its environment variable, a relay key replaces the file's top-level value; a key set inside
 * an entry still wins for that entry.
 */
import { type Command, Option } from "@commander-js/extra-typings";
import { UsageError } from "../lib/errors.ts";
import { ConfigError, type ConfigIssue } from "../lib/config/issue.ts";
import { loadConfig, type LoadedConfig } from "../lib/config/load.ts";
import { keyPosition, ranked, type RelayOverrides } from "../lib/config/precedence.ts";
import { summaryLine } from "../lib/config/summary.ts";
import { Supervisor } from "../lib/config/supervisor.ts";
import type { Entry, FileConfig } from "../lib/config/types.ts";
import { configureLogging, getLogger, type LogFormat, type LogLevel } from "../lib/observe/log.ts";
import { tokenProviderFromEnv } from "../lib/relay/token_from_env.ts";
import {
  hycoOption,
  readCaCerts,
  relayCaCertOption,
  relayOption,
  relaySuffixOption,
} from "./common.ts";
import { RELAY_AUTH_HELP } from "./help.ts";
import { type GlobalsReader, runWithOps } from "./ops.ts";
import { launcher, proxyAuth, UP_KINDS } from "./up_launch.ts";
import { onHangup } from "./up_reload.ts";

const UP_HELP = `
The file: top-level relay, hyco, relay-suffix, relay-ca-cert (defaults for every entry, each may
override them), log-level, log-format, metrics-addr, metrics-max-targets, and the lists
listeners: and tunnels:. Keys are the long flag names; a tunnel has a name and exactly one of
port-forward (with bind), socks5-proxy or http-proxy (their value is the bind address).
Precedence: flag > environment > file > default; a key inside an entry wins for that entry.
SIGHUP re-reads the file; secrets never go in it.
`;

interface UpFlags {
  config?: string;
  check?: true;
  keepGoing?: true;
  relay?: string;
  hyco?: string;
  relaySuffix?: string;
  relayCaCert?: string;
}

/** commander's view of the command: values with their sources, globals included. */
interface UpCommand extends GlobalsReader {
  getOptionValueSourceWithGlobals(key: string): string | undefined;
}

export function register(program: Command): void {
  program
    .command("up")
    .description("run every listener and tunnel of a YAML config file in one process")
    .addOption(
      new Option("-c, --config <file>", "YAML file of listeners and tunnels").env(
        "AZTUNNEL_CONFIG",
      ),
    )
    .addOption(new Option("--check", "validate the file, print one line per entry, and exit"))
    .addOption(
      new Option(
        "--keep-going",
        "run the other entries when one fails to start, listing the failed ones in /readyz",
      ).env("AZTUNNEL_KEEP_GOING"),
    )
    .addOption(relayOption())
    .addOption(hycoOption())
    .addOption(relaySuffixOption())
    .addOption(relayCaCertOption())
    .addHelpText("after", UP_HELP + RELAY_AUTH_HELP)
    .action((flags, cmd) => runUp(flags, cmd as unknown as UpCommand));
}

/** A config with its CA files read. */
interface ReadyConfig extends LoadedConfig {
  caCerts: Map<string, string[]>;
}

/**
 * Loads the file and reads the files it names (CA certificates, proxy credentials) as their flags
 * would; a bad one is an issue at its key.
 */
async function load(path: string, over: RelayOverrides): Promise<ReadyConfig> {
  const loaded = await loadConfig(path, over, { kinds: UP_KINDS });
  const caCerts = new Map<string, string[]>();
  const issues: ConfigIssue[] = [];
  const check = async (entry: Entry, key: string, read: () => Promise<unknown>) => {
    try {
      await read();
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      issues.push({ pos: keyPosition(loaded.file, entry, key), message: err.message });
    }
  };
  for (const e of loaded.entries) {
    const ca = e.relay.relayCaCert;
    if (ca && !caCerts.has(ca)) {
      await check(e, "relay-ca-cert", async () => caCerts.set(ca, await readCaCerts(ca) ?? []));
    }
    await check(e, "proxy-auth-file", () => proxyAuth(e.values["proxy-auth-file"]));
  }
  if (issues.length > 0) throw new ConfigError(path, issues);
  return { ...loaded, caCerts };
}

/** Prints each issue as `file:line:col: message` and throws the usage error (exit 2). */
function reportInvalid(err: unknown): never {
  if (!(err instanceof ConfigError)) throw err;
  const lines = err.lines();
  Deno.stderr.writeSync(new TextEncoder().encode(lines.join("\n") + "\n"));
  throw new UsageError(`${err.file}: ${lines.length} error${lines.length === 1 ? "" : "s"}`);
}

async function runUp(flags: UpFlags, cmd: UpCommand): Promise<void> {
  const path = flags.config;
  if (!path) throw new UsageError("--config is required: use -c FILE or set AZTUNNEL_CONFIG");
  const over: RelayOverrides = {
    relay: flags.relay,
    hyco: flags.hyco,
    "relay-suffix": flags.relaySuffix,
    "relay-ca-cert": flags.relayCaCert,
  };
  const keepGoing = keepGoingFlag(flags, cmd);
  const config = await load(path, over).catch(reportInvalid);
  if (flags.check) {
    const out = config.entries.map(summaryLine).join("\n") + "\n";
    await Deno.stdout.write(new TextEncoder().encode(out));
    return;
  }
  const globals = await applyFileGlobals(cmd, config.file);
  const tokens = await tokenProviderFromEnv(Deno.env);
  const logger = getLogger();
  let sup: Supervisor | undefined;
  const readiness = () => sup?.readiness() ?? { ready: false, reason: "starting" };
  await runWithOps(globals, { readiness, entryNames: true }, async (ops) => {
    let caCerts = config.caCerts;
    const s = sup = new Supervisor({
      launch: launcher({
        ops,
        tokens,
        logger,
        caCerts: (file) => file ? caCerts.get(file) : undefined,
      }),
      keepGoing,
      logger,
      signal: ops.signal,
      // A removed entry's series leave /metrics with it.
      onGone: (name) => ops.metrics?.forgetEntry(name),
    });
    ops.metrics?.registry.gauge<"name" | "kind">({
      name: "aztunnel_entry_ready",
      help: "1 while the up entry is running and ready, 0 when it is not or failed to start.",
      labelNames: ["name", "kind"],
      collect: () => s.states(),
    });
    await s.start(config.entries);
    const stopHangup = onHangup(async () => {
      try {
        const next = await load(path, over);
        caCerts = new Map([...caCerts, ...next.caCerts]);
        await s.reload(next.entries);
      } catch (err) {
        const lines = err instanceof ConfigError ? err.lines() : [String(err)];
        for (const line of lines) logger.error("config reload failed", { error: line });
      }
    });
    try {
      await s.run();
    } finally {
      stopHangup();
    }
  });
}

/**
 * `--keep-going`, or AZTUNNEL_KEEP_GOING as a boolean (commander would take any value, even 0, as
 * set).
 */
function keepGoingFlag(flags: UpFlags, cmd: UpCommand): boolean {
  if (cmd.getOptionValueSourceWithGlobals("keepGoing") !== "env") return flags.keepGoing === true;
  const text = (Deno.env.get("AZTUNNEL_KEEP_GOING") ?? "").trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(text)) return true;
  if (["", "0", "false", "no", "off"].includes(text)) return false;
  throw new UsageError(`invalid AZTUNNEL_KEEP_GOING "${text}": expected true or false`);
}

/**
 * Logging and metrics settings from the file where no flag or environment variable gave them;
 * returns what runWithOps reads the metrics flags from.
 */
async function applyFileGlobals(cmd: UpCommand, file: FileConfig): Promise<GlobalsReader> {
  const g = cmd.optsWithGlobals() as Record<string, string | undefined>;
  const pick = (key: string, fileKey: keyof FileConfig["globals"]) =>
    ranked(cmd.getOptionValueSourceWithGlobals(key), g[key], file.globals[fileKey]);
  const level = pick("logLevel", "log-level")?.toLowerCase() as LogLevel;
  const format = pick("logFormat", "log-format")?.toLowerCase() as LogFormat;
  await configureLogging({ level, format });
  const merged = {
    ...g,
    metricsAddr: pick("metricsAddr", "metrics-addr"),
    metricsMaxTargets: pick("metricsMaxTargets", "metrics-max-targets"),
  };
  return { optsWithGlobals: () => merged };
}
