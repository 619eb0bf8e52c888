/**
 * How `up` starts each kind of entry: the entry's values go through the same flag helpers and the
 * same lib entry points as `relay-listener` and `relay-sender port-forward | socks5-proxy`, with a
 * logger that carries `entry=<name>`, metrics (tunnel and warm-pool series) labelled `name=<name>`,
 * and readiness of the entry's own.
 */
import type { Logger } from "../lib/observe/log.ts";
import { LiveAllowlist } from "../lib/config/live_allowlist.ts";
import type { Launch, RunningEntry } from "../lib/config/supervisor.ts";
import { recordReferencedFiles } from "../lib/config/reload_plan.ts";
import type { Entry } from "../lib/config/types.ts";
import { DEFAULT_MAX_WARM_LEGS, runListener } from "../lib/listener/service.ts";
import { Slots } from "../lib/listener/slots.ts";
import { parseRelayEndpoint } from "../lib/relay/endpoint.ts";
import type { TokenProvider } from "../lib/relay/token.ts";
import type { SenderRelayConfig } from "../lib/sender/open_tunnel.ts";
import { runPortForward } from "../lib/sender/port_forward.ts";
import { runHttpProxy } from "../lib/sender/http_proxy.ts";
import type { ProxyAuth } from "../lib/sender/http_proxy_auth.ts";
import { runSocks5Proxy } from "../lib/sender/socks5_proxy.ts";
import { normalizeTarget } from "../lib/sender/target.ts";
import type { TunnelServiceOptions } from "../lib/sender/tunnel_service.ts";
import { DEFAULT_POOL_MAX, DEFAULT_POOL_MIN } from "../lib/sender/warm_pool.ts";
import { SHARED_LEG_STREAMS } from "../lib/sender/shared_legs.ts";
import { parseAllowlist } from "../lib/tunnel/allowlist.ts";
import { combineObservers, type TunnelObserver } from "../lib/tunnel/observer.ts";
import {
  drainFlag,
  drainOption,
  durationOrDefault,
  halfCloseLingerFlag,
  keepAliveFlag,
  keepaliveOption,
  resolveBind,
} from "./common.ts";
import { proxyAuthFlag } from "./http_proxy.ts";
import type { Ops } from "./ops.ts";
import { poolFlags } from "./pool_flags.ts";
import { ListenerReadiness, SenderReadiness } from "./readiness.ts";

export interface LaunchContext {
  ops: Ops;
  tokens: TokenProvider;
  /** The certificates of a `relay-ca-cert` file, read when the file was loaded. */
  caCerts(path: string | undefined): string[] | undefined;
  logger: Logger;
}

/** The kinds `up` runs. */
export const UP_KINDS = ["listener", "port-forward", "socks5-proxy", "http-proxy"] as const;

export function launcher(ctx: LaunchContext): Launch {
  return (entry, signal) => {
    // Before the files are read below: a later reload restarts the entry when they change.
    recordReferencedFiles(entry);
    return entry.kind === "listener"
      ? Promise.resolve(launchListener(ctx, entry, signal))
      : launchTunnel(ctx, entry, signal);
  };
}

/** An entry value as its flag's text, or the flag's default. */
function text(entry: Entry, key: string, def: string): string {
  return (entry.values[key] as string | undefined) ?? def;
}

function list(entry: Entry, key: string): string[] {
  return (entry.values[key] as string[] | undefined) ?? [];
}

function relayConfig(ctx: LaunchContext, entry: Entry): SenderRelayConfig {
  return {
    endpoint: parseRelayEndpoint(entry.relay.relay, entry.relay.relaySuffix),
    entity: entry.relay.hyco,
    tokens: ctx.ops.tokens(ctx.tokens),
    caCerts: ctx.caCerts(entry.relay.relayCaCert),
  };
}

/** The common local flags of every entry. */
function localOptions(entry: Entry) {
  return {
    keepAlive: keepAliveFlag(
      text(entry, "tcp-keepalive", keepaliveOption().defaultValue as string),
    ),
    drainTimeoutMs: drainFlag(text(entry, "drain-timeout", drainOption().defaultValue as string)),
    halfCloseLingerMs: halfCloseLingerFlag(entry.values["half-close-linger"] as string | undefined),
  };
}

function allowlistOf(entry: Entry) {
  return parseAllowlist(list(entry, "allow"));
}

function maxConnectionsOf(entry: Entry): number {
  return Number(text(entry, "max-connections", "0"));
}

/** The entry's metrics hooks (series labelled with its name). */
function observerOf(ctx: LaunchContext, entry: Entry): TunnelObserver | undefined {
  return ctx.ops.entryObserver ? ctx.ops.entryObserver(entry.name) : ctx.ops.observer;
}

function launchListener(ctx: LaunchContext, entry: Entry, signal: AbortSignal): RunningEntry {
  const log = ctx.logger.with({ entry: entry.name });
  const allowlist = new LiveAllowlist(allowlistOf(entry));
  // The listener sees a list it can swap, never null, so the warning is ours to give.
  if (!allowlist.current) log.warn("no allowlist configured, all targets will be permitted");
  const ready = new ListenerReadiness();
  const relay = relayConfig(ctx, entry);
  // Ours, so a SIGHUP can change the limit without a restart (open tunnels keep their slots).
  const connections = new Slots(maxConnectionsOf(entry));
  const metrics = ctx.ops.metrics;
  const done = runListener({
    ...relay,
    relaySuffix: entry.relay.relaySuffix,
    acceptHosts: list(entry, "relay-accept-host").flatMap((h) => h.split(","))
      .map((h) => h.trim()).filter((h) => h !== ""),
    allowlist,
    connections,
    maxWarmLegs: Number(text(entry, "max-warm-legs", String(DEFAULT_MAX_WARM_LEGS))),
    onWarmLegsChange: (held) => metrics?.setWarmLegsHeld(held, entry.name),
    connectTimeoutMs: durationOrDefault(
      text(entry, "connect-timeout", "30s"),
      "--connect-timeout",
      30_000,
    ),
    ...localOptions(entry),
    signal,
    force: ctx.ops.force,
    logger: log,
    observer: observerOf(ctx, entry),
    onConnectedChange: (up) => {
      ready.set(up);
      metrics?.setControlConnected(up, entry.name);
    },
  });
  return {
    done,
    check: () => ready.check(),
    update(next) {
      allowlist.set(allowlistOf(next));
      log.info("allowlist updated", { allow: list(next, "allow").join(",") || "*" });
      if (!allowlist.current) log.warn("no allowlist configured, all targets will be permitted");
      const max = maxConnectionsOf(next);
      if (max !== connections.limit) {
        connections.setLimit(max);
        log.info("max connections updated", { max_connections: max === 0 ? "unlimited" : max });
      }
      return true;
    },
  };
}

async function launchTunnel(
  ctx: LaunchContext,
  entry: Entry,
  signal: AbortSignal,
): Promise<RunningEntry> {
  const v = entry.values;
  const bindText = (entry.kind === "port-forward" ? v.bind : v[entry.kind]) as string;
  const pool = poolFlags(
    text(entry, "pool-min", String(DEFAULT_POOL_MIN)),
    text(entry, "pool-max", String(DEFAULT_POOL_MAX)),
    text(entry, "pool-streams", String(SHARED_LEG_STREAMS)),
  );
  const ready = new SenderReadiness();
  let bound!: () => void;
  const listening = new Promise<void>((resolve) => bound = resolve);
  const opts: TunnelServiceOptions = {
    relay: relayConfig(ctx, entry),
    bind: resolveBind(bindText, v.gateway === true),
    ...localOptions(entry),
    signal,
    force: ctx.ops.force,
    logger: ctx.logger.with({ entry: entry.name }),
    observer: combineObservers(observerOf(ctx, entry), ready.observer),
    pool,
    poolMetrics: pool.max > 0 ? ctx.ops.metrics?.pool(entry.name) : undefined,
    onListening: () => {
      ready.bound();
      bound();
    },
  };
  const auth = await proxyAuth(v["proxy-auth-file"]);
  const done = runTunnel(entry, opts, auth);
  // A bind failure rejects `done` before anything listens.
  await Promise.race([listening, done]);
  return { done, check: () => ready.check() };
}

/** The sender mode of a tunnel entry, started; its promise settles when the mode ends. */
function runTunnel(
  entry: Entry,
  opts: TunnelServiceOptions,
  auth: ProxyAuth | undefined,
): Promise<void> {
  const v = entry.values;
  switch (entry.kind) {
    case "port-forward":
      return runPortForward({ ...opts, target: normalizeTarget(v["port-forward"] as string) });
    case "http-proxy":
      return runHttpProxy({ ...opts, auth });
    default:
      return runSocks5Proxy(opts);
  }
}

/** `proxy-auth-file` read as `--proxy-auth-file` would be. */
export function proxyAuth(file: unknown): Promise<ProxyAuth | undefined> {
  if (typeof file !== "string") return Promise.resolve(undefined);
  return proxyAuthFlag({ proxyAuthFile: file }, { getOptionValueSource: () => "cli" });
}
