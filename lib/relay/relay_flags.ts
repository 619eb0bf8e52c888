/**
 * The relay flags' rules without the CLI library: which name wins, what a hybrid connection name
 * may be, the refused insecure-TLS switch and the CA file. cmd/common.ts applies them to commander's
 * values; `relay-sender connect`'s fast path (lib/agent/fast_connect.ts) to its own parse, so both
 * accept and refuse the same command lines.
 */
import { UsageError } from "../errors.ts";
import type { EnvReader } from "./token_from_env.ts";

export interface RelayFlags {
  relay?: string;
  namespace?: string;
  hyco?: string;
  relaySuffix?: string;
  relayCaCert?: string;
  relayInsecureTls?: boolean;
}

/**
 * The relay and hyco names. Precedence: `--hyco` > positional `[hyco]` > AZTUNNEL_HYCO_NAME, and
 * `--relay` > `--namespace` > AZTUNNEL_RELAY_NAME. `flags` holds command-line values with the
 * environment's filled in (as commander does); `fromCli(key)` says which came from the command line.
 */
export function relayNames(
  flags: RelayFlags,
  fromCli: (key: "relay" | "hyco") => boolean,
  positionalHyco?: string,
): { relay: string; hyco: string } {
  return requireRelayNames({
    ...flags,
    hyco: fromCli("hyco") ? flags.hyco : positionalHyco ?? flags.hyco,
    relay: fromCli("relay") || !flags.namespace ? flags.relay : undefined,
  });
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
  const why = hycoNameProblem(hyco);
  if (why) throw new UsageError(`invalid hybrid connection name ${JSON.stringify(hyco)}: ${why}`);
  const relay = flags.relay ?? flags.namespace;
  if (!relay) {
    throw new UsageError("relay namespace is required: use --relay or set AZTUNNEL_RELAY_NAME");
  }
  return { relay, hyco };
}

/**
 * Why `name` cannot be a hybrid connection (it becomes a URL path: `/$hc/{name}`), or undefined.
 * Azure allows letters, digits, `.`, `-`, `_` and `/`; only what could never work is refused here.
 */
export function hycoNameProblem(name: string): string | undefined {
  // deno-lint-ignore no-control-regex
  if (/[\s\x00-\x1f\x7f]/.test(name)) return "must not contain spaces or control characters";
  if (name.includes("..")) return 'must not contain ".."';
  if (/[?#%\\]/.test(name)) return 'must not contain "?", "#", "%" or "\\"';
  if (name.startsWith("/") || name.endsWith("/")) return 'must not start or end with "/"';
  return undefined;
}

/**
 * Go's `--relay-insecure-tls` / `AZTUNNEL_RELAY_INSECURE_TLS=1` (only `1` counts, as in Go) is a
 * usage error: certificate checks cannot be turned off here, a private CA is trusted instead.
 */
export function refuseInsecureTls(flag: boolean | undefined, env: EnvReader): void {
  const via = flag
    ? "--relay-insecure-tls"
    : env.get("AZTUNNEL_RELAY_INSECURE_TLS") === "1"
    ? "AZTUNNEL_RELAY_INSECURE_TLS=1"
    : undefined;
  if (!via) return;
  throw new UsageError(
    `${via} is not supported: relay certificates are always verified; to trust a private or ` +
      "self-signed relay, pass its CA with --relay-ca-cert FILE (or AZTUNNEL_RELAY_CA_CERT)",
  );
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
