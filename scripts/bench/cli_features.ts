/**
 * What the CLI under test supports, read from its `--help`: the bench runs against today's build
 * and picks up the warm-leg pool (`--pool-min/--pool-max`), shared legs (`--pool-streams`) and
 * `relay-sender agent` once they land.
 */
import { runCli } from "../../tests/helpers/proc.ts";

export interface CliFeatures {
  /** `relay-sender port-forward --pool-max` exists (0 turns the pool off). */
  pool: boolean;
  /** `relay-sender agent` exists: `connect` can go through a running sender. */
  agent: boolean;
  /** `--pool-streams` exists (0 turns shared legs off). */
  streams: boolean;
}

async function help(args: string[]): Promise<string> {
  const r = await runCli([...args, "--help"]);
  return r.text + r.stderr;
}

export async function detectCliFeatures(): Promise<CliFeatures> {
  const [portForward, sender] = await Promise.all([
    help(["relay-sender", "port-forward"]),
    help(["relay-sender"]),
  ]);
  return {
    pool: /--pool-max\b/.test(portForward),
    agent: /^\s+agent\b/m.test(sender),
    streams: /--pool-streams\b/.test(portForward),
  };
}
