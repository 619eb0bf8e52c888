/**
 * The `up` file's text → FileConfig, or a ConfigError listing every problem with its line and column:
 * the YAML itself, unknown keys, secrets, values their flag would refuse, and the entries' shape
 * (one kind per tunnel, names present and unique).
 */
import type { Node } from "yaml";
import { errorMessage, UsageError } from "../errors.ts";
import { SHARED_LEG_MAX_STREAMS } from "../listener/shared_leg.ts";
import { ConfigError, type Position } from "./issue.ts";
import {
  type KeySpec,
  LISTENER_KEYS,
  NAME_PATTERN,
  TOP_KEYS,
  TUNNEL_KEYS,
  TUNNEL_KINDS,
} from "./schema.ts";
import { secretKeyProblem, secretValueProblem } from "./secrets.ts";
import type {
  EntryKind,
  EntryValues,
  FileConfig,
  FileEntry,
  GlobalKeys,
  RelayKeys,
} from "./types.ts";
import { type MapItem, YamlReader } from "./yaml_reader.ts";

export interface ValidateOptions {
  /** The kinds this build can run; the others are refused as "not supported yet". Default: all. */
  kinds?: readonly EntryKind[];
}

/** Throws ConfigError when anything is wrong; `file` names the file in every message. */
export function validateConfig(text: string, file: string, opts: ValidateOptions = {}): FileConfig {
  const r = new YamlReader(text);
  const config: FileConfig = { file, relay: {}, globals: {}, at: {}, entries: [] };
  if (r.issues.length === 0) readTop(r, config, opts);
  if (r.issues.length > 0) throw new ConfigError(file, sortIssues(r));
  return config;
}

function sortIssues(r: YamlReader) {
  return [...r.issues].sort((a, b) => a.pos.line - b.pos.line || a.pos.col - b.pos.col);
}

function readTop(r: YamlReader, config: FileConfig, opts: ValidateOptions): void {
  const start = { line: 1, col: 1 };
  if (r.root === null) {
    r.fail(start, "the file is empty: add listeners: or tunnels:");
    return;
  }
  const items = r.map(r.root, "the file", start);
  if (!items) return;
  const top: Record<string, string> = {};
  for (const item of items) {
    if (item.key === "listeners" || item.key === "tunnels") {
      const kind = item.key === "listeners" ? "listener" : "tunnel";
      const nodes = r.list(item.value, item.key, item.pos) ?? [];
      nodes.forEach((node, i) => readEntry(r, config, kind, node, i, opts));
      continue;
    }
    const value = readKey(r, item, TOP_KEYS, "at the top of the file");
    if (value === undefined) continue;
    top[item.key] = value as string;
    config.at[item.key] = item.pos;
  }
  const { "log-level": l, "log-format": f, "metrics-addr": m, "metrics-max-targets": t, ...relay } =
    top;
  config.relay = relay as RelayKeys;
  const globals: GlobalKeys = {
    "log-level": l,
    "log-format": f,
    "metrics-addr": m,
    "metrics-max-targets": t,
  };
  config.globals = Object.fromEntries(Object.entries(globals).filter(([, v]) => v !== undefined));
  if (config.entries.length === 0 && r.issues.length === 0) {
    r.fail(r.pos(r.root), "nothing to run: add listeners: or tunnels:");
  }
  checkNames(r, config.entries);
}

/** One key's value in its shape and checked by its spec; undefined (issue recorded) when invalid. */
function readKey(
  r: YamlReader,
  item: MapItem,
  keys: Record<string, KeySpec>,
  where: string,
): string | string[] | boolean | undefined {
  const spec = keys[item.key];
  if (!spec) {
    return void r.fail(
      item.pos,
      secretKeyProblem(item.key) ?? `unknown key "${item.key}" ${where}`,
    );
  }
  const value = r.value(item, spec.shape);
  if (value === undefined || typeof value === "boolean") return value;
  const at = item.value ? r.pos(item.value) : item.pos;
  for (const v of typeof value === "string" ? [value] : value) {
    const leak = secretValueProblem(item.key, v);
    if (leak) return void r.fail(at, leak);
  }
  try {
    spec.check?.(value);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    return void r.fail(at, errorMessage(err));
  }
  return value;
}

function readEntry(
  r: YamlReader,
  config: FileConfig,
  kind: "listener" | "tunnel",
  node: Node,
  index: number,
  opts: ValidateOptions,
): void {
  const pos = r.pos(node);
  const label = `${kind === "listener" ? "listeners" : "tunnels"}[${index + 1}]`;
  const items = r.map(node, `each of ${kind}s`, pos);
  if (!items) return;
  const keys = kind === "listener" ? LISTENER_KEYS : TUNNEL_KEYS;
  const values: EntryValues = {};
  const at: Record<string, Position> = {};
  for (const item of items) {
    const value = readKey(r, item, keys, `in ${label}`);
    // Known keys count as present even when invalid, so one bad value is one issue.
    if (item.key in keys) at[item.key] = item.pos;
    if (value !== undefined) values[item.key] = value;
  }
  const entryKind = kind === "listener" ? "listener" : tunnelKind(r, at, pos, label);
  if (!entryKind) return;
  if (opts.kinds && !opts.kinds.includes(entryKind)) {
    r.fail(at[entryKind] ?? pos, `${entryKind} is not supported yet by this build`);
    return;
  }
  checkPool(r, values, at);
  const name = values.name as string | undefined ??
    (kind === "listener" ? `listener-${index + 1}` : undefined);
  if (name === undefined) return void r.fail(pos, `${label} needs a name`);
  config.entries.push({ kind: entryKind, name, values, pos, at });
}

/** The one kind key a tunnel has; an issue when it has none or several. */
function tunnelKind(
  r: YamlReader,
  at: Record<string, Position>,
  pos: Position,
  label: string,
): EntryKind | undefined {
  const kinds = TUNNEL_KINDS.filter((k) => k in at)
    .sort((a, b) => at[a].line - at[b].line || at[a].col - at[b].col);
  if (kinds.length === 0) {
    r.fail(pos, `${label} needs one of ${TUNNEL_KINDS.join(", ")}`);
    return undefined;
  }
  if (kinds.length > 1) {
    r.fail(at[kinds[1]], `${label} has both ${kinds[0]} and ${kinds[1]}: one kind per tunnel`);
    return undefined;
  }
  if (kinds[0] === "port-forward" && !("bind" in at)) {
    r.fail(at[kinds[0]], `${label} needs bind: the local host:port the port-forward listens on`);
    return undefined;
  }
  if (kinds[0] !== "http-proxy" && "proxy-auth-file" in at) {
    r.fail(at["proxy-auth-file"], `proxy-auth-file is for http-proxy tunnels only`);
    return undefined;
  }
  if (kinds[0] !== "port-forward" && "bind" in at) {
    r.fail(at.bind, `${kinds[0]}'s own value is its bind address: drop "bind"`);
    return undefined;
  }
  return kinds[0];
}

function checkPool(r: YamlReader, values: EntryValues, at: Record<string, Position>): void {
  const min = Number(values["pool-min"] ?? NaN);
  const max = Number(values["pool-max"] ?? NaN);
  if (max > 0 && min > max) r.fail(at["pool-min"], `pool-min ${min} is more than pool-max ${max}`);
  const streams = Number(values["pool-streams"] ?? 0);
  if (streams > SHARED_LEG_MAX_STREAMS) {
    r.fail(
      at["pool-streams"],
      `pool-streams ${streams} is more than a listener carries on one leg (${SHARED_LEG_MAX_STREAMS})`,
    );
  }
}

function checkNames(r: YamlReader, entries: FileEntry[]): void {
  const seen = new Map<string, Position>();
  for (const e of entries) {
    const at = e.at.name ?? e.pos;
    if (!NAME_PATTERN.test(e.name)) {
      r.fail(at, `invalid name "${e.name}": letters, digits, ".", "_" and "-" only`);
    }
    const first = seen.get(e.name);
    if (first) r.fail(at, `duplicate name "${e.name}" (first at line ${first.line})`);
    else seen.set(e.name, at);
  }
}
