/**
 * Flag > environment > file > default. Commander already ranks a flag over its environment
 * variable; this ranks either over the file's top level. A key set inside an entry is that entry's
 * own choice and beats all three.
 */
import { dirname, isAbsolute, resolve } from "node:path";
import { errorMessage, UsageError } from "../errors.ts";
import { parseRelayEndpoint } from "../relay/endpoint.ts";
import { ConfigError, type ConfigIssue, type Position } from "./issue.ts";
import type { Entry, FileConfig, FileEntry, RelayKey } from "./types.ts";

/** The relay keys given as flags or environment variables (undefined: not given). */
export type RelayOverrides = Partial<Record<RelayKey, string>>;

/** Where commander says a value came from: "cli", "env", "default", … */
export type ValueSource = string | undefined;

/** A global flag's value: the flag's own when given (flag or environment), else the file's. */
export function ranked(
  source: ValueSource,
  flagValue: string | undefined,
  fileValue: string | undefined,
): string | undefined {
  if (source === "cli" || source === "env") return flagValue;
  return fileValue ?? flagValue;
}

const FLAG_NAMES: Record<RelayKey, string> = {
  relay: "--relay / AZTUNNEL_RELAY_NAME",
  hyco: "--hyco / AZTUNNEL_HYCO_NAME",
  "relay-suffix": "--relay-suffix / AZTUNNEL_RELAY_SUFFIX",
  "relay-ca-cert": "--relay-ca-cert / AZTUNNEL_RELAY_CA_CERT",
};

/** Every entry with its relay keys settled; throws ConfigError naming each entry that lacks one. */
export function resolveEntries(config: FileConfig, over: RelayOverrides): Entry[] {
  const issues: ConfigIssue[] = [];
  const entries = config.entries.map((e) => resolveEntry(config, e, over, issues));
  if (issues.length > 0) throw new ConfigError(config.file, issues);
  return entries;
}

function resolveEntry(
  config: FileConfig,
  e: FileEntry,
  over: RelayOverrides,
  issues: ConfigIssue[],
): Entry {
  const pick = (key: RelayKey): { value?: string; pos: Position; fromFile: boolean } => {
    const own = e.values[key] as string | undefined;
    if (own !== undefined) return { value: own, pos: e.at[key], fromFile: true };
    if (over[key] !== undefined) return { value: over[key], pos: e.pos, fromFile: false };
    return { value: config.relay[key], pos: config.at[key] ?? e.pos, fromFile: true };
  };
  const need = (key: RelayKey): string => {
    const { value } = pick(key);
    if (value) return value;
    issues.push({
      pos: e.pos,
      message: `"${e.name}" has no ${key}: set it in the entry or at the top of the file, ` +
        `or use ${FLAG_NAMES[key]}`,
    });
    return "";
  };
  const hyco = need("hyco");
  const relay = need("relay");
  const suffix = pick("relay-suffix").value;
  if (relay) {
    try {
      parseRelayEndpoint(relay, suffix);
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      const { pos, fromFile } = pick("relay");
      const why = fromFile ? errorMessage(err) : `${errorMessage(err)} (from ${FLAG_NAMES.relay})`;
      issues.push({ pos, message: why });
    }
  }
  const ca = pick("relay-ca-cert");
  const relayCaCert = ca.value && ca.fromFile ? besideFile(config.file, ca.value) : ca.value;
  const authFile = e.values["proxy-auth-file"] as string | undefined;
  const values = authFile === undefined
    ? e.values
    : { ...e.values, "proxy-auth-file": besideFile(config.file, authFile) };
  return {
    kind: e.kind,
    name: e.name,
    relay: { relay, hyco, relaySuffix: suffix, relayCaCert },
    values,
    pos: e.pos,
    at: e.at,
  };
}

/** A path written in the file (relay-ca-cert, proxy-auth-file) is relative to the file's folder, not to the working directory. */
function besideFile(file: string, path: string): string {
  return isAbsolute(path) ? path : resolve(dirname(file), path);
}

/** Where a key of `entry` is written: its own key, the file's top-level one, or the entry. */
export function keyPosition(config: FileConfig, entry: Entry, key: string): Position {
  return entry.at[key] ?? config.at[key] ?? entry.pos;
}
