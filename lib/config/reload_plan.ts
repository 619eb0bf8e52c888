/**
 * What a SIGHUP changes: entries are matched by name; a listener whose only changes are `allow`
 * and `max-connections` is updated in place (both are read per accept), any other change restarts the entry, and entries that are not running (removed
 * from the file, or failed) are stopped or started. Unchanged entries are left alone.
 */
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
  ]);
}

function sameBesidesLive(a: Entry, b: Entry): boolean {
  return fingerprint(a, LIVE_LISTENER_KEYS) === fingerprint(b, LIVE_LISTENER_KEYS);
}
