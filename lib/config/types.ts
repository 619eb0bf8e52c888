/**
 * The `up` file once validated. Values stay as a flag would spell them (`"30s"`, `"100"`), so the
 * command turns them into options with the same code as the flags; positions are kept beside them
 * (not in them) so that moving an entry in the file does not count as changing it.
 */
import type { Position } from "./issue.ts";

export type EntryKind = "listener" | "port-forward" | "socks5-proxy" | "http-proxy";
export type TunnelKind = Exclude<EntryKind, "listener">;

/** The relay keys: top-level defaults that each entry may override. */
export interface RelayKeys {
  relay?: string;
  hyco?: string;
  "relay-suffix"?: string;
  "relay-ca-cert"?: string;
}
export const RELAY_KEYS = ["relay", "hyco", "relay-suffix", "relay-ca-cert"] as const;
export type RelayKey = typeof RELAY_KEYS[number];

/** Global flags the file may set (below a flag or its environment variable). */
export interface GlobalKeys {
  "log-level"?: string;
  "log-format"?: string;
  "metrics-addr"?: string;
  "metrics-max-targets"?: string;
}

/** One entry's own keys, as written (lists for `allow` and `relay-accept-host`). */
export type EntryValues = Record<string, string | string[] | boolean>;

export interface FileEntry {
  kind: EntryKind;
  name: string;
  /** The entry's own keys, `name` and the kind key included. */
  values: EntryValues;
  /** Where the entry starts, and where each of its keys is. */
  pos: Position;
  at: Record<string, Position>;
}

export interface FileConfig {
  /** The path as given; relative `relay-ca-cert` paths are resolved against its folder. */
  file: string;
  relay: RelayKeys;
  globals: GlobalKeys;
  /** Where each top-level key is. */
  at: Record<string, Position>;
  entries: FileEntry[];
}

/** An entry with its relay keys settled (entry > flag > environment > file top level). */
export interface Entry {
  kind: EntryKind;
  name: string;
  relay: { relay: string; hyco: string; relaySuffix?: string; relayCaCert?: string };
  values: EntryValues;
  pos: Position;
  at: Record<string, Position>;
}
