/**
 * `--persist`: the agent started on demand, as a detached child of this same program (the compiled
 * binary, or `deno run` with the permissions this process was granted). Its stdio is /dev/null, so
 * it never holds ssh's pipes open, and it has its own session, so ssh's hang-up does not reach it.
 */
import { delay } from "../async.ts";
import type { AgentPaths } from "./paths.ts";
import { dialAgent } from "./client.ts";

export interface Argv {
  cmd: string;
  args: string[];
}

/** Deno's permissions a `deno run` child is given when this process has them unscoped. */
const PERMISSIONS = ["net", "read", "write", "env", "sys", "run", "ffi", "import"] as const;

/** The command line that runs this program with `args`. */
export function selfArgv(args: string[]): Argv {
  if (Deno.build.standalone) return { cmd: Deno.execPath(), args };
  const granted = PERMISSIONS.filter((name) =>
    Deno.permissions.querySync({ name }).state === "granted"
  ).map((name) => `--allow-${name}`);
  return {
    cmd: Deno.execPath(),
    args: ["run", "--quiet", "--no-prompt", ...granted, Deno.mainModule, ...args],
  };
}

export interface StartedAgent {
  pid: number;
  /** The child's exit code once it has exited (a usage error, another agent won the race). */
  exited: Promise<number>;
}

/** Starts `argv` detached with stdio on /dev/null; `env` is added to ours. */
export function spawnDetached(argv: Argv, env: Record<string, string> = {}): StartedAgent {
  const child = new Deno.Command(argv.cmd, {
    args: argv.args,
    env,
    stdin: "null",
    stdout: "null",
    stderr: "null",
    detached: true,
  }).spawn();
  // This process may exit while the agent runs on.
  child.unref();
  return { pid: child.pid, exited: child.status.then((s) => s.code) };
}

const FIRST_POLL_MS = 5;
const MAX_POLL_MS = 100;

/**
 * A connection to the agent once it listens, or null when it exited first or `timeoutMs` passed.
 * Polls: the child has no channel to tell us, and its socket is what we need anyway.
 */
export async function waitForAgent(
  paths: AgentPaths,
  uid: number,
  started: StartedAgent,
  timeoutMs: number,
): Promise<Deno.UnixConn | null> {
  let exited = false;
  started.exited.then(() => exited = true, () => exited = true);
  const end = performance.now() + timeoutMs;
  for (let wait = FIRST_POLL_MS;; wait = Math.min(wait * 2, MAX_POLL_MS)) {
    const conn = await dialAgent(paths, uid).catch(() => null);
    // A child that lost the race to another agent exits, and the winner answers.
    if (conn || exited || performance.now() >= end) return conn;
    await delay(wait);
  }
}
