/** Flags shared by several commands: the relay flags and the local listener's flags. */
import { type Command, Option } from "@commander-js/extra-typings";
import { UsageError } from "../lib/errors.ts";
import { getLogger } from "../lib/observe/log.ts";
import { parseDuration } from "../lib/duration.ts";
import {
  type HostPort,
  parseHostPort as parseListenHostPort,
  splitHostPort,
} from "../lib/net/host_port.ts";
import { parseRelayEndpoint } from "../lib/relay/endpoint.ts";
import {
  readCaCerts,
  refuseInsecureTls,
  type RelayFlags,
  relayNames,
} from "../lib/relay/relay_flags.ts";
import { tokenProviderFromEnv } from "../lib/relay/token_from_env.ts";
import type { SenderRelayConfig } from "../lib/sender/open_tunnel.ts";

export {
  readCaCerts,
  refuseInsecureTls,
  type RelayFlags,
  requireRelayNames,
} from "../lib/relay/relay_flags.ts";

export const relayOption = () =>
  new Option(
    "--relay <namespace>",
    "Azure Relay namespace name, FQDN or URI (ws:// for a local relay)",
  )
    .env("AZTUNNEL_RELAY_NAME");
export const namespaceOption = () => new Option("--namespace <namespace>").hideHelp();
export const hycoOption = () =>
  new Option("--hyco <name>", "hybrid connection name").env("AZTUNNEL_HYCO_NAME");
export const relaySuffixOption = () =>
  new Option(
    "--relay-suffix <suffix>",
    "DNS suffix for bare namespace names (default .servicebus.windows.net)",
  )
    .env("AZTUNNEL_RELAY_SUFFIX");
export const relayCaCertOption = () =>
  new Option(
    "--relay-ca-cert <file>",
    "PEM file with a CA to trust for the relay's TLS certificate",
  )
    .env("AZTUNNEL_RELAY_CA_CERT");

/** Go's flag, kept so that using it says what to do instead (see `refuseInsecureTls`). */
export const relayInsecureTlsOption = () => new Option("--relay-insecure-tls").hideHelp();

/** The relay flags every relay-* command takes. */
export function addRelayOptions<C extends Command<unknown[], Record<string, unknown>>>(cmd: C): C {
  cmd
    .addOption(relayOption())
    .addOption(namespaceOption())
    .addOption(hycoOption())
    .addOption(relaySuffixOption())
    .addOption(relayCaCertOption())
    .addOption(relayInsecureTlsOption());
  return cmd;
}

export const bindOption = (def: string) =>
  new Option("-b, --bind <addr>", "local bind host:port (:PORT alone binds every interface)")
    .default(def);
export const gatewayOption = () => new Option("--gateway", "bind to 0.0.0.0 instead of 127.0.0.1");
export const keepaliveOption = () =>
  new Option(
    "--tcp-keepalive <duration>",
    "TCP keepalive (any value turns it on; Deno cannot set the interval, the OS default applies)",
  ).default("30s");
export const drainOption = () =>
  new Option(
    "--drain-timeout <duration>",
    "on SIGINT/SIGTERM, how long open tunnels may finish (0 = cut them at once)",
  )
    .default("10s");

const DEFAULT_HALF_CLOSE_LINGER = "2s";

export const halfCloseLingerOption = () =>
  new Option(
    "--half-close-linger <duration>",
    "with a peer that cannot half-close (Go, Arc): how long replies still arrive after the local side stops sending",
  )
    .env("AZTUNNEL_HALF_CLOSE_LINGER")
    .default(DEFAULT_HALF_CLOSE_LINGER);

/** `--half-close-linger` in milliseconds; 0 (or less) ends the tunnel at the local EOF, as Go does. */
export function halfCloseLingerFlag(text = DEFAULT_HALF_CLOSE_LINGER): number {
  return Math.max(0, parseDuration(text, "--half-close-linger"));
}

/** Where a flag's value came from ("cli", "env", "default", …); commander tracks it per option. */
export interface OptionSources {
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
): Promise<SenderRelayConfig> {
  const fromCli = (key: string) => cmd.getOptionValueSource(key) === "cli";
  const { relay, hyco } = relayNames(flags, fromCli, positionalHyco);
  refuseInsecureTls(flags.relayInsecureTls, Deno.env);
  const endpoint = parseRelayEndpoint(relay, flags.relaySuffix);
  const caCerts = await readCaCerts(flags.relayCaCert);
  const tokens = await tokenProviderFromEnv(Deno.env);
  return { endpoint, entity: hyco, tokens, caCerts };
}

/** lib/net's `parseHostPort` for a flag: a malformed value is a usage error naming `what`. */
export function parseHostPort(text: string, what: string): HostPort {
  const hp = parseListenHostPort(text);
  if (hp) return hp;
  const port = splitHostPort(text.trim())?.port ?? "";
  const why = /^\d+$/.test(port) ? `port ${port} is above 65535` : "expected host:port";
  throw new UsageError(`invalid ${what} "${text}": ${why}`);
}

/**
 * The listen address from --bind/--gateway: `:5432` binds all interfaces, as in Go, with a WARN
 * (on `warn`, the global logger by default) since that is rarely what a local tunnel wants.
 */
export function resolveBind(
  bind: string,
  gateway: boolean | undefined,
  warn: (message: string, attrs: Record<string, unknown>) => void = (m, a) =>
    getLogger().warn(m, a),
): HostPort {
  const hp = parseHostPort(bind, "--bind address");
  if (gateway) return { hostname: "0.0.0.0", port: hp.port };
  if (hp.hostname !== "") return hp;
  warn(
    `--bind without a host listens on every interface (0.0.0.0): anyone who can reach this ` +
      `machine can use the tunnel; use 127.0.0.1:${hp.port} to stay local`,
    { bind },
  );
  return { hostname: "0.0.0.0", port: hp.port };
}

/** A duration flag where 0 falls back to the default, like the Go tool; negative is a usage error. */
export function durationOrDefault(text: string, flag: string, defMs: number): number {
  const ms = parseDuration(text, flag);
  if (ms < 0) throw new UsageError(`invalid ${flag} "${text}": must not be negative (0 = default)`);
  return ms > 0 ? ms : defMs;
}

/**
 * Go's `--tcp-keepalive`: validated, but any value leaves keepalive on (0 means 30 s in Go, negative
 * the OS default; Deno takes no interval, so the OS one applies).
 */
export function keepAliveFlag(text: string): boolean {
  parseDuration(text, "--tcp-keepalive");
  return true;
}

/** A count flag (`--pool-min`, `--max-connections`, ...): digits only, 0 allowed. */
export function parseCount(text: string, flag: string): number {
  if (!/^\d+$/.test(text.trim())) {
    throw new UsageError(`invalid ${flag} "${text}": expected a number >= 0`);
  }
  return Number(text);
}

/** `--drain-timeout` in milliseconds; 0 means no drain, negative is a usage error. */
export function drainFlag(text: string): number {
  const ms = parseDuration(text, "--drain-timeout");
  if (ms < 0) {
    throw new UsageError(`invalid --drain-timeout "${text}": must not be negative (0 = no drain)`);
  }
  return ms;
}
