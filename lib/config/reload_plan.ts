/**
 * What a SIGHUP changes: entries are matched by name; a listener whose only change is `allow` is
 * updated in place, any other change restarts the entry, and entries that are not running (removed
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
  /** Listeners whose allowlist alone changed. */
  update: Entry[];
}

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
    else if (e.kind === "listener" && old.kind === e.kind && sameBesidesAllow(old, e)) {
      plan.update.push(e);
    } else plan.restart.push(e);
  }
  return plan;
}

/** What makes an entry what it is: kind, settled relay keys and values; not where it is written. */
function fingerprint(e: Entry, omit?: string): string {
  const values = Object.entries(e.values).filter(([k]) => k !== omit)
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

function sameBesidesAllow(a: Entry, b: Entry): boolean {
  return fingerprint(a, "allow") === fingerprint(b, "allow");
}
