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
import type { TunnelServiceOptions } from "../lib/sender/tunnel_service.ts";
import { normalizeTarget } from "../lib/sender/target.ts";
import {
  bindOption,
  drainOption,
  gatewayOption,
  halfCloseLingerFlag,
  halfCloseLingerOption,
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
} from "./common.ts";
import { type GlobalsReader, runSenderWithOps } from "./ops.ts";

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

/** Where a flag's value came from ("cli", "env", "default", …); commander tracks it per option. */
interface OptionSources {
  getOptionValueSource(key: string): string | undefined;
}

/**
 * Relay endpoint, entity, credentials (environment only) and CA from the flags. Precedence:
 * `--hyco` > positional `[hyco]` > AZTUNNEL_HYCO_NAME, and `--relay` > `--namespace` >
 * AZTUNNEL_RELAY_NAME (commander fills env values in as if they were flags, so undo that here).
 */
export async function resolveRelay(
  flags: RelayFlags,
  cmd: OptionSources,
  positionalHyco?: string,
): Promise<RelayConfig> {
  const fromCli = (key: string) => cmd.getOptionValueSource(key) === "cli";
  const names: RelayFlags = {
    ...flags,
    hyco: fromCli("hyco") ? flags.hyco : positionalHyco ?? flags.hyco,
    relay: fromCli("relay") || !flags.namespace ? flags.relay : undefined,
  };
  const { relay, hyco } = requireRelayNames(names);
  const endpoint = parseRelayEndpoint(relay, flags.relaySuffix);
  const caCerts = await readCaCerts(flags.relayCaCert);
  const tokens = await tokenProviderFromEnv(Deno.env);
  return { endpoint, entity: hyco, tokens, caCerts };
}

/**
 * Go's `--tcp-keepalive`: validated, but any value leaves keepalive on (0 means 30 s in Go, negative
 * the OS default; Deno takes no interval, so the OS one applies).
 */
export function keepAliveFlag(text: string): boolean {
  parseDuration(text, "--tcp-keepalive");
  return true;
}

/** `--drain-timeout` in milliseconds; negative means no drain. */
export function drainFlag(text: string): number {
  return Math.max(0, parseDuration(text, "--drain-timeout"));
}

/** The local listener of port-forward and socks5-proxy: bind, keepalive and drain flags. */
function addServiceOptions<Args extends unknown[], Opts extends Record<string, unknown>>(
  cmd: Command<Args, Opts>,
  defaultBind: string,
) {
  return cmd
    .addOption(bindOption(defaultBind))
    .addOption(gatewayOption())
    .addOption(keepaliveOption())
    .addOption(drainOption())
    .addOption(halfCloseLingerOption());
}

interface ServiceFlags extends RelayFlags {
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
  const relay = await resolveRelay(flags, cmd, positionalHyco);
  await runSenderWithOps(cmd, (ops, ready) =>
    run({
      relay: { ...relay, tokens: ops.tokens(relay.tokens) },
      bind,
      keepAlive,
      drainTimeoutMs,
      halfCloseLingerMs,
      signal: ops.signal,
      force: ops.force,
      logger: getLogger(),
      observer: ops.observer,
      onListening: () => ready.bound(),
    }));
}

export function register(program: Command): void {
  const sender = program
    .command("relay-sender")
    .description("open tunnels through Azure Relay: port-forward, socks5-proxy, connect");

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

  addRelayOptions(
    sender
      .command("connect")
      .description("bridge stdin/stdout to <host:port> (ssh ProxyCommand)")
      .argument("<target>", "host:port for the listener to dial"),
  )
    .addOption(halfCloseLingerOption())
    .action(async (targetArg, flags, cmd) => {
      const target = normalizeTarget(targetArg);
      const halfCloseLingerMs = halfCloseLingerFlag(flags.halfCloseLinger);
      const relay = await resolveRelay(flags as RelayFlags, cmd);
      await runSenderWithOps(cmd, (ops, ready) => {
        // stdin/stdout are the local side: there from the start.
        ready.bound();
        return runConnect({
          relay: { ...relay, tokens: ops.tokens(relay.tokens) },
          target,
          halfCloseLingerMs,
          signal: ops.signal,
          logger: getLogger(),
          observer: ops.observer,
        });
      });
    });
}
