/**
 * `relay-sender agent` (a sender with no local port, serving the agent socket) and connect's
 * hand-off to it (`--persist` starts one on demand, like OpenSSH's ControlPersist).
 */
import { type Command, Option } from "@commander-js/extra-typings";
import { handOff } from "../lib/agent/handoff.ts";
import { offOrDuration } from "../lib/agent/idle.ts";
import { agentPaths, agentSupported } from "../lib/agent/paths.ts";
import { runAgent } from "../lib/agent/server.ts";
import { selfArgv, spawnDetached } from "../lib/agent/spawn.ts";
import { AztunnelError, errorMessage } from "../lib/errors.ts";
import { getLogger } from "../lib/observe/log.ts";
import type { SenderRelayConfig } from "../lib/sender/open_tunnel.ts";
import { TunnelSource } from "../lib/sender/tunnel_source.ts";
import { stdioStream } from "../lib/sender/stdio.ts";
import {
  addRelayOptions,
  drainFlag,
  drainOption,
  halfCloseLingerFlag,
  halfCloseLingerOption,
  type OptionSources,
  type RelayFlags,
  resolveRelay,
} from "./common.ts";
import { type GlobalsReader, runSenderWithOps } from "./ops.ts";
import { shutdownSignal } from "./shutdown.ts";
import { poolFlags, poolMaxOption, poolMinOption, poolStreamsOption } from "./pool_flags.ts";

export const persistOption = () =>
  new Option(
    "--persist <duration>",
    "when no agent runs, start one in the background that exits after this long idle (0 = off)",
  ).env("AZTUNNEL_PERSIST");

export const idleExitOption = () =>
  new Option(
    "--idle-exit <duration>",
    "exit after this long without an open connection (default: never)",
  ).env("AZTUNNEL_IDLE_EXIT");

/** Adds `agent` to the relay-sender command. */
export function addAgentCommand(sender: Command): void {
  addRelayOptions(
    sender
      .command("agent")
      .description(
        "serve `connect` for one relay and hyco from the background (Unix socket, no local port)",
      ),
  )
    .addOption(idleExitOption())
    .addOption(drainOption())
    .addOption(halfCloseLingerOption())
    .addOption(poolMinOption())
    .addOption(poolMaxOption())
    .addOption(poolStreamsOption())
    .action(async (flags, cmd) => {
      if (!agentSupported()) {
        throw new AztunnelError("unsupported", "relay-sender agent is not supported on Windows");
      }
      const idleExitMs = offOrDuration(flags.idleExit, "--idle-exit");
      const drainTimeoutMs = drainFlag(flags.drainTimeout);
      const halfCloseLingerMs = halfCloseLingerFlag(flags.halfCloseLinger);
      const pool = poolFlags(flags.poolMin, flags.poolMax, flags.poolStreams);
      const relay = await resolveRelay(flags as RelayFlags, cmd);
      const paths = await agentPaths(relay.endpoint, relay.entity);
      await runSenderWithOps(cmd, async (ops, ready) => {
        const logger = getLogger();
        // Warm legs and one token cache for every connect the agent serves.
        const source = new TunnelSource({
          relay: { ...relay, tokens: ops.tokens(relay.tokens) },
          logger,
          observer: ops.observer,
          pool,
          metrics: pool.max > 0 ? ops.metrics?.pool() : undefined,
        });
        try {
          await runAgent({
            paths,
            // Early data: a client's first bytes leave with the envelope on a warm leg.
            opener: source,
            signal: ops.signal,
            force: ops.force,
            drainTimeoutMs,
            idleExitMs,
            logger,
            observer: ops.observer,
            halfCloseLingerMs,
            onListening: () => ready.bound(),
          });
        } finally {
          await source.close();
        }
      });
    });
}

export interface ConnectAgentFlags extends RelayFlags {
  persist?: string;
  halfCloseLinger?: string;
}

/**
 * Runs `connect` through the agent for `relay` when one answers (or `--persist` started one):
 * true once that session has ended; false when the direct path must be taken.
 */
export async function connectViaAgent(
  relay: SenderRelayConfig,
  target: string,
  flags: ConnectAgentFlags,
  cmd: OptionSources & GlobalsReader,
): Promise<boolean> {
  const persist = offOrDuration(flags.persist, "--persist") > 0;
  const logger = getLogger();
  if (!agentSupported()) {
    logger.debug("connecting directly", { target, reason: "no agent on Windows" });
    return false;
  }
  let paths;
  try {
    paths = await agentPaths(relay.endpoint, relay.entity);
  } catch (err) {
    logger.debug("connecting directly", { target, reason: errorMessage(err) });
    return false;
  }
  const stop = shutdownSignal();
  try {
    return await handOff({
      paths,
      target,
      uid: Deno.uid() ?? -1,
      logger,
      signal: stop.signal,
      local: () => stdioStream(),
      start: persist
        ? () => spawnDetached(selfArgv(agentArgs(flags, cmd)), { AZTUNNEL_METRICS_ADDR: "" })
        : undefined,
    });
  } finally {
    stop.dispose();
  }
}

/** The connect flags given on the command line that the agent takes too (env is inherited). */
const AGENT_FLAGS: [keyof ConnectAgentFlags, string][] = [
  ["relay", "--relay"],
  ["namespace", "--namespace"],
  ["hyco", "--hyco"],
  ["relaySuffix", "--relay-suffix"],
  ["relayCaCert", "--relay-ca-cert"],
  ["halfCloseLinger", "--half-close-linger"],
];

/** `relay-sender agent` with connect's relay flags and log settings, idling out after --persist. */
export function agentArgs(flags: ConnectAgentFlags, cmd: OptionSources & GlobalsReader): string[] {
  const globals = cmd.optsWithGlobals() as { logLevel?: string; logFormat?: string };
  const args = [
    ...(globals.logLevel ? ["--log-level", globals.logLevel] : []),
    ...(globals.logFormat ? ["--log-format", globals.logFormat] : []),
    "relay-sender",
    "agent",
  ];
  for (const [key, flag] of AGENT_FLAGS) {
    const value = flags[key];
    if (typeof value === "string" && cmd.getOptionValueSource(key) === "cli") {
      args.push(flag, value);
    }
  }
  return [...args, "--idle-exit", flags.persist ?? ""];
}
