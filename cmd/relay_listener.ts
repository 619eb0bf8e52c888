/** `relay-listener`: accept tunnels from the relay and dial their targets. */
import { type Command, Option } from "@commander-js/extra-typings";
import { UsageError } from "../lib/errors.ts";
import { DEFAULT_MAX_WARM_LEGS, runListener } from "../lib/listener/service.ts";
import { parseAcceptHost } from "../lib/relay/accept_address.ts";
import { relayAuthMode } from "../lib/relay/token_from_env.ts";
import { getLogger } from "../lib/observe/log.ts";
import { parseAllowlist } from "../lib/tunnel/allowlist.ts";
import {
  addRelayOptions,
  drainFlag,
  drainOption,
  durationOrDefault,
  halfCloseLingerFlag,
  halfCloseLingerOption,
  keepAliveFlag,
  keepaliveOption,
  parseCount,
  type RelayFlags,
  resolveRelay,
} from "./common.ts";
import { runWithOps } from "./ops.ts";
import { ListenerReadiness } from "./readiness.ts";

/** `--relay-accept-host` values (each may be a comma list, as the environment variable is). */
function parseAcceptHosts(values: readonly string[]): string[] {
  const hosts = values.flatMap((v) => v.split(",")).map((h) => h.trim()).filter((h) => h !== "");
  for (const h of hosts) {
    try {
      parseAcceptHost(h);
    } catch {
      throw new UsageError(`invalid --relay-accept-host "${h}": expected host or host:port`);
    }
  }
  return hosts;
}

export function register(program: Command): void {
  addRelayOptions(
    program
      .command("relay-listener")
      .description("listen on Azure Relay and forward each tunnel to its target")
      .argument("[hyco]", "hybrid connection name (same as --hyco)"),
  )
    .addOption(
      new Option(
        "--allow <entries>",
        "allowed targets: host:port, CIDR:port, CIDR:*, [IPv6]:port, *:port, *.suffix:port, *.suffix:* or * (repeatable, comma-separated; names matched literally, no DNS)",
      ).argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]),
    )
    .addOption(
      new Option(
        "--relay-accept-host <host>",
        "a further host (host or host:port) the relay may send rendezvous addresses for (repeatable)",
      )
        .env("AZTUNNEL_RELAY_ACCEPT_HOSTS")
        .argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]),
    )
    .addOption(
      new Option("--max-connections <n>", "max concurrent tunnels (0 = unlimited)").default("0"),
    )
    .addOption(
      new Option("--max-warm-legs <n>", "max warm legs held for their envelope (0 = none)")
        .env("AZTUNNEL_MAX_WARM_LEGS")
        .default(String(DEFAULT_MAX_WARM_LEGS)),
    )
    .addOption(
      new Option(
        "--connect-timeout <duration>",
        "deadline for the envelope and the target dial (0 = 30s, as in Go)",
      )
        .default("30s"),
    )
    .addOption(keepaliveOption())
    .addOption(drainOption())
    .addOption(halfCloseLingerOption())
    .action(async (hyco, flags, cmd) => {
      const allowlist = parseAllowlist(flags.allow ?? []);
      const acceptHosts = parseAcceptHosts(flags.relayAcceptHost ?? []);
      const maxConnections = parseCount(flags.maxConnections, "--max-connections");
      const maxWarmLegs = parseCount(flags.maxWarmLegs, "--max-warm-legs");
      const connectTimeoutMs = durationOrDefault(flags.connectTimeout, "--connect-timeout", 30_000);
      const keepAlive = keepAliveFlag(flags.tcpKeepalive);
      const drainTimeoutMs = drainFlag(flags.drainTimeout);
      const halfCloseLingerMs = halfCloseLingerFlag(flags.halfCloseLinger);
      const relay = await resolveRelay(flags as RelayFlags, cmd, hyco);
      const ready = new ListenerReadiness();
      await runWithOps(cmd, { readiness: () => ready.check() }, (ops) =>
        runListener({
          ...relay,
          tokens: ops.tokens(relay.tokens),
          auth: relayAuthMode(Deno.env),
          relaySuffix: (flags as RelayFlags).relaySuffix,
          acceptHosts,
          allowlist,
          maxConnections,
          maxWarmLegs,
          onWarmLegsChange: (held) => ops.metrics?.setWarmLegsHeld(held),
          connectTimeoutMs,
          keepAlive,
          drainTimeoutMs,
          halfCloseLingerMs,
          signal: ops.signal,
          force: ops.force,
          logger: getLogger(),
          observer: ops.observer,
          onConnectedChange: (up) => {
            ready.set(up);
            ops.metrics?.setControlConnected(up);
          },
        }));
    });
}
