/** `up --check`'s one line per entry: what would run, where, and through which relay. */
import type { Entry } from "./types.ts";

export function summaryLine(e: Entry): string {
  const via = `via ${e.relay.relay} hyco ${e.relay.hyco}`;
  const v = e.values;
  if (e.kind === "listener") {
    const allow = (v.allow as string[] | undefined)?.join(",") ?? "* (no allowlist)";
    const max = v["max-connections"] ? ` max-connections ${v["max-connections"]}` : "";
    return `listener ${e.name}: allow ${allow}${max} ${via}`;
  }
  if (e.kind === "port-forward") {
    return `port-forward ${e.name}: ${v.bind} -> ${v["port-forward"]} ${via}`;
  }
  return `${e.kind} ${e.name}: ${v[e.kind]} ${via}`;
}
