/** `relay-sender port-forward | socks5-proxy | connect`: local sockets (or stdio) into tunnels. */
import type { Command } from "@commander-js/extra-typings";
import { getLogger } from "../lib/observe/log.ts";
import { relayAuthMode } from "../lib/relay/token_from_env.ts";
import { runConnect } from "../lib/sender/connect.ts";
import { runPortForward } from "../lib/sender/port_forward.ts";
import { runSocks5Proxy } from "../lib/sender/socks5_proxy.ts";
import type { TunnelServiceOptions } from "../lib/sender/tunnel_service.ts";
import { normalizeTarget } from "../lib/sender/target.ts";
import {
  addRelayOptions,
  bindOption,
  drainFlag,
  drainOption,
  gatewayOption,
  halfCloseLingerFlag,
  halfCloseLingerOption,
  keepAliveFlag,
  keepaliveOption,
  type OptionSources,
  type RelayFlags,
  resolveBind,
  resolveRelay,
} from "./common.ts";
import { type GlobalsReader, runSenderWithOps } from "./ops.ts";
import { addAgentCommand, connectViaAgent, persistOption } from "./agent.ts";
import { addProxyAuthOptions, HTTP_PROXY_BIND, httpProxyRunner } from "./http_proxy.ts";
import {
  type PoolFlags,
  poolFlags,
  poolMaxOption,
  poolMinOption,
  poolStreamsOption,
} from "./pool_flags.ts";

/** The local listener of port-forward and socks5-proxy: bind, keepalive, drain and pool flags. */
function addServiceOptions<Args extends unknown[], Opts extends Record<string, unknown>>(
  cmd: Command<Args, Opts>,
  defaultBind: string,
) {
  return cmd
    .addOption(bindOption(defaultBind))
    .addOption(gatewayOption())
    .addOption(keepaliveOption())
    .addOption(drainOption())
    .addOption(halfCloseLingerOption())
    .addOption(poolMinOption())
    .addOption(poolMaxOption())
    .addOption(poolStreamsOption());
}

interface ServiceFlags extends RelayFlags, PoolFlags {
  bind: string;
  gateway?: true;
  tcpKeepalive: string;
  drainTimeout: string;
  halfCloseLinger: string;
}

/**
 * Runs port-forward or socks5-proxy with the ops server, from its flags: the local ones are checked
 * before the relay ones, whose credentials come from the environment.
 */
async function runService(
  flags: ServiceFlags,
  cmd: OptionSources & GlobalsReader,
  positionalHyco: string | undefined,
  run: (opts: TunnelServiceOptions) => Promise<void>,
): Promise<void> {
  const bind = resolveBind(flags.bind, flags.gateway);
  const keepAlive = keepAliveFlag(flags.tcpKeepalive);
  const drainTimeoutMs = drainFlag(flags.drainTimeout);
  const halfCloseLingerMs = halfCloseLingerFlag(flags.halfCloseLinger);
  const pool = poolFlags(flags.poolMin, flags.poolMax, flags.poolStreams);
  const relay = await resolveRelay(flags, cmd, positionalHyco);
  await runSenderWithOps(cmd, (ops, ready) =>
    run({
      relay: { ...relay, tokens: ops.tokens(relay.tokens) },
      relayAuth: relayAuthMode(Deno.env),
      bind,
      keepAlive,
      drainTimeoutMs,
      halfCloseLingerMs,
      signal: ops.signal,
      force: ops.force,
      logger: getLogger(),
      observer: ops.observer,
      pool,
      poolMetrics: pool.max > 0 ? ops.metrics?.pool() : undefined,
      onListening: () => ready.bound(),
    }));
}

export function register(program: Command): void {
  const sender = program
    .command("relay-sender")
    .description(
      "open tunnels through Azure Relay: port-forward, socks5-proxy, http-proxy, connect",
    );

  addServiceOptions(
    addRelayOptions(
      sender
        .command("port-forward")
        .description("forward a local port through the relay to <host:port>")
        .argument("<target>", "host:port for the listener to dial"),
    ),
    "127.0.0.1:0",
  )
    .action(async (targetArg, flags, cmd) => {
      const target = normalizeTarget(targetArg);
      await runService(flags, cmd, undefined, (opts) => runPortForward({ ...opts, target }));
    });

  addServiceOptions(
    addRelayOptions(
      sender
        .command("socks5-proxy")
        .description("run a local SOCKS5 proxy whose connections go through the relay")
        .argument("[hyco]", "hybrid connection name (same as --hyco)"),
    ),
    "127.0.0.1:1080",
  )
    .action((hyco, flags, cmd) => runService(flags, cmd, hyco, runSocks5Proxy));

  addProxyAuthOptions(addServiceOptions(
    addRelayOptions(
      sender
        .command("http-proxy")
        .description("run a local HTTP proxy (CONNECT, http:// URLs) into the relay")
        .argument("[hyco]", "hybrid connection name (same as --hyco)"),
    ),
    HTTP_PROXY_BIND,
  ))
    .action(async (hyco, flags, cmd) =>
      runService(flags, cmd, hyco, await httpProxyRunner(flags, cmd))
    );

  addRelayOptions(
    sender
      .command("connect")
      .description("bridge stdin/stdout to <host:port> (ssh ProxyCommand)")
      .argument("<target>", "host:port for the listener to dial"),
  )
    .addOption(halfCloseLingerOption())
    .addOption(persistOption())
    .action(async (targetArg, flags, cmd) => {
      const target = normalizeTarget(targetArg);
      const halfCloseLingerMs = halfCloseLingerFlag(flags.halfCloseLinger);
      const relay = await resolveRelay(flags as RelayFlags, cmd);
      if (await connectViaAgent(relay, target, flags, cmd)) return;
      await runSenderWithOps(cmd, (ops, ready) => {
        // stdin/stdout are the local side: there from the start.
        ready.bound();
        return runConnect({
          relay: { ...relay, tokens: ops.tokens(relay.tokens) },
          relayAuth: relayAuthMode(Deno.env),
          target,
          halfCloseLingerMs,
          signal: ops.signal,
          logger: getLogger(),
          observer: ops.observer,
        });
      });
    });

  addAgentCommand(sender);
}
