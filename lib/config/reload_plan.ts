/**
 * What a SIGHUP changes: entries are matched by name; a listener whose only changes are `allow`
 * and `max-connections` is updated in place (both are read per accept), any other change restarts the entry, and entries that are not running (removed
 * from the file, or failed) are stopped or started. Unchanged entries are left alone. The files an
 * entry names (relay-ca-cert, proxy-auth-file) count by their contents, not just their paths: a
 * new password in the same file must restart the entry, or the old one would keep working.
 */
import { createHash } from "node:crypto";
import type { Entry } from "./types.ts";

export interface ReloadPlan {
  /** Names of running entries the new file no longer has. */
  stop: string[];
  /** New entries, and entries that were not running (a failed start is tried again). */
  start: Entry[];
  /** Changed entries: stopped, then started from the new file. */
  restart: Entry[];
  /** Listeners whose changes are all LIVE_LISTENER_KEYS. */
  update: Entry[];
}

/** Listener keys a running listener takes in place (RunningEntry.update). */
export const LIVE_LISTENER_KEYS: readonly string[] = ["allow", "max-connections"];

export function planReload(
  running: ReadonlyMap<string, Entry>,
  next: readonly Entry[],
): ReloadPlan {
  const names = new Set(next.map((e) => e.name));
  const plan: ReloadPlan = {
    stop: [...running.keys()].filter((n) => !names.has(n)),
    start: [],
    restart: [],
    update: [],
  };
  for (const e of next) {
    const old = running.get(e.name);
    if (!old) plan.start.push(e);
    else if (fingerprint(old) === fingerprint(e)) continue;
    else if (e.kind === "listener" && old.kind === e.kind && sameBesidesLive(old, e)) {
      plan.update.push(e);
    } else plan.restart.push(e);
  }
  return plan;
}

/** What makes an entry what it is: kind, settled relay keys and values; not where it is written. */
function fingerprint(e: Entry, omit: readonly string[] = []): string {
  const values = Object.entries(e.values).filter(([k]) => !omit.includes(k))
    .sort(([a], [b]) => a < b ? -1 : 1);
  return JSON.stringify([
    e.kind,
    e.relay.relay,
    e.relay.hyco,
    e.relay.relaySuffix,
    e.relay.relayCaCert,
    values,
    referencedFilesDigest(e),
  ]);
}

/**
 * Contents of each running entry's files as they were when it was read: the first digest taken of
 * an Entry object sticks (its launch records it, see recordReferencedFiles), so a reload compares
 * what the entry runs with against what the files hold now (the new Entry objects are fresh).
 */
const digests = new WeakMap<Entry, string>();

/** Records the contents of the files `e` names; call when the entry starts using them. */
export function recordReferencedFiles(e: Entry): void {
  referencedFilesDigest(e);
}

/**
 * SHA-256 of each named file's contents (or of why it could not be read). Read synchronously,
 * because planning is: these are small files, and only read at a start or a SIGHUP.
 */
function referencedFilesDigest(e: Entry): string {
  const known = digests.get(e);
  if (known !== undefined) return known;
  const files = [e.relay.relayCaCert, e.values["proxy-auth-file"]]
    .filter((f): f is string => typeof f === "string");
  const digest = files.map((file) => {
    try {
      return createHash("sha256").update(Deno.readFileSync(file)).digest("hex");
    } catch (err) {
      // Unreadable now: differs from any contents, so the entry restarts and reports the error.
      return `unreadable: ${err instanceof Error ? err.name : String(err)}`;
    }
  }).join(",");
  digests.set(e, digest);
  return digest;
}

function sameBesidesLive(a: Entry, b: Entry): boolean {
  return fingerprint(a, LIVE_LISTENER_KEYS) === fingerprint(b, LIVE_LISTENER_KEYS);
}
