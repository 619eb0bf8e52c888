/** Flags and helpers shared by several commands: relay auth flags, bind flags, signals. */
import { Option } from "@commander-js/extra-typings";
import { UsageError } from "../lib/errors.ts";
import { parseDuration } from "../lib/duration.ts";
import { splitHostPort } from "../lib/tunnel/ip.ts";

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

export const bindOption = (def: string) =>
  new Option("-b, --bind <addr>", "local bind address:port").default(def);
export const gatewayOption = () => new Option("--gateway", "bind to 0.0.0.0 instead of 127.0.0.1");
export const keepaliveOption = () =>
  new Option(
    "--tcp-keepalive <duration>",
    "TCP keepalive (any value turns it on; Deno cannot set the interval, the OS default applies)",
  ).default("30s");
export const drainOption = () =>
  new Option("--drain-timeout <duration>", "on SIGINT/SIGTERM, how long open tunnels may finish")
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

export interface RelayFlags {
  relay?: string;
  namespace?: string;
  hyco?: string;
  relaySuffix?: string;
  relayCaCert?: string;
}

/** The hyco and relay values with the Go tool's precedence and error texts (hyco is checked first). */
export function requireRelayNames(flags: RelayFlags, positionalHyco?: string): {
  relay: string;
  hyco: string;
} {
  const hyco = flags.hyco ?? positionalHyco;
  if (!hyco) {
    throw new UsageError(
      "hybrid connection name is required: use --hyco or set AZTUNNEL_HYCO_NAME",
    );
  }
  const relay = flags.relay ?? flags.namespace;
  if (!relay) {
    throw new UsageError("relay namespace is required: use --relay or set AZTUNNEL_RELAY_NAME");
  }
  return { relay, hyco };
}

/** Reads the --relay-ca-cert file; a missing or unreadable file is a usage error. */
export async function readCaCerts(file?: string): Promise<string[] | undefined> {
  if (!file) return undefined;
  try {
    const pem = await Deno.readTextFile(file);
    if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
      throw new UsageError(`--relay-ca-cert ${file}: no PEM certificate in file`);
    }
    return [pem];
  } catch (err) {
    if (err instanceof UsageError) throw err;
    if (err instanceof Deno.errors.NotFound) {
      throw new UsageError(`--relay-ca-cert ${file}: no such file`);
    }
    if (err instanceof Deno.errors.PermissionDenied) {
      throw new UsageError(`--relay-ca-cert ${file}: permission denied`);
    }
    throw new UsageError(`--relay-ca-cert ${file}: ${(err as Error).message}`);
  }
}

export interface HostPort {
  hostname: string;
  port: number;
}

/** Splits `host:port` / `[v6]:port` / `:port` with Go's net.SplitHostPort, plus a port check. */
export function parseHostPort(text: string, what: string): HostPort {
  const hp = splitHostPort(text.trim());
  if (!hp || !/^\d{1,5}$/.test(hp.port)) {
    throw new UsageError(`invalid ${what} "${text}": expected host:port`);
  }
  const port = Number(hp.port);
  if (port > 65535) throw new UsageError(`invalid ${what} "${text}": port out of range`);
  return { hostname: hp.host, port };
}

/** The listen address from --bind/--gateway: `:5432` binds all interfaces, as in Go. */
export function resolveBind(bind: string, gateway: boolean | undefined): HostPort {
  const hp = parseHostPort(bind, "--bind address");
  if (gateway) return { hostname: "0.0.0.0", port: hp.port };
  return { hostname: hp.hostname === "" ? "0.0.0.0" : hp.hostname, port: hp.port };
}

/** A duration flag where 0 (or less) falls back to the default, like the Go tool. */
export function durationOrDefault(text: string, flag: string, defMs: number): number {
  const ms = parseDuration(text, flag);
  return ms > 0 ? ms : defMs;
}

export interface ShutdownSignal {
  /** Aborted on the first SIGINT/SIGTERM: stop accepting, drain open tunnels. */
  signal: AbortSignal;
  /** Aborted on the second: cut every tunnel now instead of waiting out the drain. */
  force: AbortSignal;
  /** Removes the handlers. */
  dispose(): void;
}

/**
 * Stop requests from SIGINT/SIGTERM (SIGINT only on Windows), or from `source` in tests. Both the
 * graceful and the forced stop end the command with exit 0: the user asked it to stop, and the
 * second signal only says "do not wait" (unlike Go, where Ctrl-C is exit 1 "context canceled").
 */
export function shutdownSignal(
  source?: { subscribe(handler: () => void): () => void },
): ShutdownSignal {
  const first = new AbortController();
  const second = new AbortController();
  const handler = () => {
    if (!first.signal.aborted) first.abort(new DOMException("shutdown requested", "AbortError"));
    else second.abort(new DOMException("second shutdown request", "AbortError"));
  };
  const unsubscribe = (source ?? processSignals).subscribe(handler);
  return { signal: first.signal, force: second.signal, dispose: unsubscribe };
}

const processSignals = {
  subscribe(handler: () => void): () => void {
    const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
    for (const s of signals) Deno.addSignalListener(s, handler);
    return () => {
      for (const s of signals) Deno.removeSignalListener(s, handler);
    };
  },
};
