/** `relay-sender port-forward | socks5-proxy | connect`: local sockets (or stdio) into tunnels. */
import type { Command } from "@commander-js/extra-typings";
import { parseDuration } from "../lib/duration.ts";
import { getLogger } from "../lib/observe/log.ts";
import { parseRelayEndpoint } from "../lib/relay/endpoint.ts";
import { tokenProviderFromEnv } from "../lib/relay/token.ts";
import { runConnect } from "../lib/sender/connect.ts";
import type { RelayConfig } from "../lib/sender/open_tunnel.ts";
import { runPortForward } from "../lib/sender/port_forward.ts";
import { runSocks5Proxy } from "../lib/sender/socks5_proxy.ts";
import { normalizeTarget } from "../lib/sender/target.ts";
import {
  bindOption,
  drainOption,
  gatewayOption,
  hycoOption,
  keepaliveOption,
  namespaceOption,
  readCaCerts,
  relayCaCertOption,
  type RelayFlags,
  relayOption,
  relaySuffixOption,
  requireRelayNames,
  resolveBind,
  shutdownSignal,
} from "./common.ts";

/** The relay flags every relay-* command takes. */
export function addRelayOptions<C extends Command<unknown[], Record<string, unknown>>>(cmd: C): C {
  cmd
    .addOption(relayOption())
    .addOption(namespaceOption())
    .addOption(hycoOption())
    .addOption(relaySuffixOption())
    .addOption(relayCaCertOption());
  return cmd;
}

/** Relay endpoint, entity, credentials (environment only) and CA from the flags. */
export async function resolveRelay(
  flags: RelayFlags,
  positionalHyco?: string,
): Promise<RelayConfig> {
  const { relay, hyco } = requireRelayNames(flags, positionalHyco);
  const endpoint = parseRelayEndpoint(relay, flags.relaySuffix);
  const caCerts = await readCaCerts(flags.relayCaCert);
  const tokens = await tokenProviderFromEnv(Deno.env);
  return { endpoint, entity: hyco, tokens, caCerts };
}

/** Go's keepalive flag: validated; 0 and negative values still leave keepalive on (OS interval). */
function keepAliveFlag(text: string): boolean {
  parseDuration(text, "--tcp-keepalive");
  return true;
}

function drainFlag(text: string): number {
  return Math.max(0, parseDuration(text, "--drain-timeout"));
}

/** Runs `fn` with a signal that SIGINT/SIGTERM abort. */
async function withShutdown(fn: (signal: AbortSignal) => Promise<void>): Promise<void> {
  const stop = shutdownSignal();
  try {
    await fn(stop.signal);
  } finally {
    stop.dispose();
  }
}

export function register(program: Command): void {
  const sender = program
    .command("relay-sender")
    .description("open tunnels through Azure Relay: port-forward, socks5-proxy, connect");

  addRelayOptions(
    sender
      .command("port-forward")
      .description("forward a local port through the relay to <host:port>")
      .argument("<target>", "host:port for the listener to dial"),
  )
    .addOption(bindOption("127.0.0.1:0"))
    .addOption(gatewayOption())
    .addOption(keepaliveOption())
    .addOption(drainOption())
    .action(async (targetArg, flags) => {
      const target = normalizeTarget(targetArg);
      const bind = resolveBind(flags.bind, flags.gateway);
      const keepAlive = keepAliveFlag(flags.tcpKeepalive);
      const drainTimeoutMs = drainFlag(flags.drainTimeout);
      const relay = await resolveRelay(flags as RelayFlags);
      await withShutdown((signal) =>
        runPortForward({
          relay,
          target,
          bind,
          keepAlive,
          drainTimeoutMs,
          signal,
          logger: getLogger(),
        })
      );
    });

  addRelayOptions(
    sender
      .command("socks5-proxy")
      .description("run a local SOCKS5 proxy whose connections go through the relay")
      .argument("[hyco]", "hybrid connection name (same as --hyco)"),
  )
    .addOption(bindOption("127.0.0.1:1080"))
    .addOption(gatewayOption())
    .addOption(keepaliveOption())
    .addOption(drainOption())
    .action(async (hyco, flags) => {
      const bind = resolveBind(flags.bind, flags.gateway);
      const keepAlive = keepAliveFlag(flags.tcpKeepalive);
      const drainTimeoutMs = drainFlag(flags.drainTimeout);
      const relay = await resolveRelay(flags as RelayFlags, hyco);
      await withShutdown((signal) =>
        runSocks5Proxy({ relay, bind, keepAlive, drainTimeoutMs, signal, logger: getLogger() })
      );
    });

  addRelayOptions(
    sender
      .command("connect")
      .description("bridge stdin/stdout to <host:port> (ssh ProxyCommand)")
      .argument("<target>", "host:port for the listener to dial"),
  )
    .action(async (targetArg, flags) => {
      const target = normalizeTarget(targetArg);
      const relay = await resolveRelay(flags as RelayFlags);
      await withShutdown((signal) => runConnect({ relay, target, signal, logger: getLogger() }));
    });
}
