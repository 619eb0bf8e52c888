/**
 * `relay-sender connect` through a running agent without loading the CLI (commander, logging, the
 * cmd/ modules cost ~120 ms a process, most of an ssh ProxyCommand's budget). Only a command line
 * whose every word it understands, that the full CLI would accept, and for which an agent answers
 * is served here; anything else is left to the CLI, which then behaves exactly as without this.
 * The rules are the CLI's own (lib/relay/relay_flags.ts, endpoint.ts, sender/target.ts, idle.ts).
 */
import { parseDuration } from "../duration.ts";
import type { Logger } from "../observe/log.ts";
import { parseRelayEndpoint } from "../relay/endpoint.ts";
import {
  readCaCerts,
  refuseInsecureTls,
  type RelayFlags,
  relayNames,
} from "../relay/relay_flags.ts";
import { type EnvReader, relayAuthMode } from "../relay/token_from_env.ts";
import { stdioStream } from "../sender/stdio.ts";
import { normalizeTarget } from "../sender/target.ts";
import type { ByteStream } from "../tunnel/bridge.ts";
import { handOff } from "./handoff.ts";
import { offOrDuration } from "./idle.ts";
import { type AgentPaths, agentPaths, agentSupported } from "./paths.ts";

/** connect's own flags the fast path takes, with the environment variable commander reads. */
export const CONNECT_FLAGS: Readonly<Record<string, { key: ConnectKey; env?: string }>> = {
  "--relay": { key: "relay", env: "AZTUNNEL_RELAY_NAME" },
  "--namespace": { key: "namespace" },
  "--hyco": { key: "hyco", env: "AZTUNNEL_HYCO_NAME" },
  "--relay-suffix": { key: "relaySuffix", env: "AZTUNNEL_RELAY_SUFFIX" },
  "--relay-ca-cert": { key: "relayCaCert", env: "AZTUNNEL_RELAY_CA_CERT" },
  "--half-close-linger": { key: "halfCloseLinger", env: "AZTUNNEL_HALF_CLOSE_LINGER" },
  "--persist": { key: "persist", env: "AZTUNNEL_PERSIST" },
};

/**
 * The global flags it takes, with the values it serves: debug logging is left to the CLI (its
 * lines say which path was taken), and at other levels this path has nothing to log.
 */
export const GLOBAL_FLAGS: Readonly<Record<string, readonly string[]>> = {
  "--log-level": ["info", "warn", "error"],
  "--log-format": ["logfmt", "json"],
};

type ConnectKey = Exclude<keyof RelayFlags, "relayInsecureTls"> | "halfCloseLinger" | "persist";

export interface ConnectLine {
  target: string;
  /** Command-line values, with the environment's filled in where the command line has none. */
  flags: Partial<Record<ConnectKey, string>>;
  /** The keys whose value came from the command line. */
  cli: ReadonlySet<ConnectKey>;
}

/**
 * `[globals] relay-sender [globals] connect [flags] <target>` with only known flags, each given
 * once, a value after every one, and no `--`; null for any other command line.
 */
export function parseConnectLine(args: readonly string[], env: EnvReader): ConnectLine | null {
  const words: string[] = [];
  const cli = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith("-") || arg === "-") {
      words.push(arg);
      continue;
    }
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    // connect's flags only after `connect`, as commander has them.
    const known = name in GLOBAL_FLAGS || (words.length >= 2 && name in CONNECT_FLAGS);
    const value = eq > 0 ? arg.slice(eq + 1) : args[++i];
    if (!known || cli.has(name) || value === undefined) return null;
    cli.set(name, value);
  }
  if (words.length !== 3 || words[0] !== "relay-sender" || words[1] !== "connect") return null;
  for (const [name, allowed] of Object.entries(GLOBAL_FLAGS)) {
    const value = cli.get(name);
    if (value !== undefined && !allowed.includes(value.trim().toLowerCase())) return null;
  }
  const line: ConnectLine = { target: words[2], flags: {}, cli: new Set() };
  for (const [name, { key, env: envName }] of Object.entries(CONNECT_FLAGS)) {
    const value = cli.get(name) ?? (envName ? env.get(envName) : undefined);
    if (cli.has(name)) (line.cli as Set<ConnectKey>).add(key);
    if (value !== undefined) line.flags[key] = value;
  }
  return line;
}

export interface ConnectPlan {
  target: string;
  paths: AgentPaths;
}

/**
 * The target and agent socket of `line`, or null when the CLI would refuse it (its error is the
 * CLI's to print) or has to decide (`--persist`'s start is left to it too, see fastConnect).
 */
export async function planConnect(
  line: ConnectLine,
  env: EnvReader,
  uid: number | null,
): Promise<ConnectPlan | null> {
  if (!agentSupported()) return null;
  try {
    const target = normalizeTarget(line.target);
    parseDuration(line.flags.halfCloseLinger ?? "2s", "--half-close-linger");
    offOrDuration(line.flags.persist, "--persist");
    const { relay, hyco } = relayNames(line.flags, (key) => line.cli.has(key));
    refuseInsecureTls(undefined, env);
    const endpoint = parseRelayEndpoint(relay, line.flags.relaySuffix);
    await readCaCerts(line.flags.relayCaCert);
    // A half-set SAS pair is a usage error; the credentials themselves are the agent's.
    relayAuthMode(env);
    return { target, paths: await agentPaths(endpoint, hyco, env, uid) };
  } catch {
    return null;
  }
}

export interface FastConnectOptions {
  env?: EnvReader;
  uid?: number | null;
  /** SIGINT/SIGTERM: the first ends the session (exit 0), as in the CLI. */
  stop(): { signal: AbortSignal; dispose(): void };
  /** The local end; default stdin/stdout. */
  local?(): ByteStream;
}

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, with: () => quiet };

/**
 * True when the session ran through the agent (it has ended: exit 0); false when the CLI must run
 * (it redoes everything, logs included). Throws what connect through the agent throws (AgentRefused,
 * `agent_failed`, AgentProtocolError) once an agent answered. No agent is ever started here.
 */
export async function fastConnect(
  args: readonly string[],
  opts: FastConnectOptions,
): Promise<boolean> {
  const env = opts.env ?? Deno.env;
  const uid = opts.uid === undefined ? Deno.uid() : opts.uid;
  const line = parseConnectLine(args, env);
  const plan = line && await planConnect(line, env, uid);
  if (!plan) return false;
  const stop = opts.stop();
  // A throw, too, means the agent answered and this path served the command.
  let served = true;
  try {
    served = await handOff({
      ...plan,
      uid: uid ?? -1,
      logger: quiet,
      signal: stop.signal,
      local: opts.local ?? (() => stdioStream()),
    });
    return served;
  } finally {
    stop.dispose();
    if (served && env.get("AZTUNNEL_DEBUG_FAST_PATH") === "1") {
      Deno.stderr.writeSync(new TextEncoder().encode("aztunnel: fast path: through agent\n"));
    }
  }
}
