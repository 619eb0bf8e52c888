/**
 * `relay-sender connect`'s first step: hand stdio to a running agent for the same relay and hyco
 * (starting one first with `--persist`), or say that the direct path must be taken.
 */
import { errorMessage } from "../errors.ts";
import type { Logger } from "../observe/log.ts";
import type { ByteStream } from "../tunnel/bridge.ts";
import { askAgent, dialAgent } from "./client.ts";
import type { AgentPaths } from "./paths.ts";
import { spliceToAgent } from "./splice.ts";
import { type StartedAgent, waitForAgent } from "./spawn.ts";

/** How long a started agent may take to listen (process start-up, token provider). */
export const AGENT_START_TIMEOUT_MS = 10_000;

export interface HandOffOptions {
  paths: AgentPaths;
  target: string;
  uid: number;
  logger: Logger;
  signal?: AbortSignal;
  /** The local end, made only once the agent took the request; default stdin/stdout. */
  local(): ByteStream;
  /** Starts an agent when none answers (`--persist`). */
  start?(): StartedAgent;
  startTimeoutMs?: number;
}

/**
 * True when the session ran through the agent (it has ended); false when the direct path must be
 * taken (no agent, an unsafe directory, an agent that would not start or hung up unanswered).
 * Throws AgentRefused (the listener's or the agent's code) and `agent_failed`, like the direct path.
 */
export async function handOff(opts: HandOffOptions): Promise<boolean> {
  const attrs = { socket: opts.paths.socket, target: opts.target };
  const direct = (reason: string) => {
    opts.logger.debug("connecting directly", { ...attrs, reason });
    return false;
  };
  let conn: Deno.UnixConn | null;
  try {
    conn = await dialAgent(opts.paths, opts.uid);
  } catch (err) {
    opts.logger.warn("agent socket not used", { ...attrs, error: errorMessage(err) });
    return direct("unsafe agent directory");
  }
  if (!conn && opts.start) {
    let started: StartedAgent;
    try {
      started = opts.start();
    } catch (err) {
      opts.logger.warn("agent did not start", { ...attrs, error: errorMessage(err) });
      return direct("agent did not start");
    }
    opts.logger.debug("agent started", { ...attrs, pid: started.pid });
    conn = await waitForAgent(
      opts.paths,
      opts.uid,
      started,
      opts.startTimeoutMs ?? AGENT_START_TIMEOUT_MS,
    );
    if (!conn) {
      opts.logger.warn("agent did not start", { ...attrs, pid: started.pid });
      return direct("started agent is not listening");
    }
  }
  if (!conn) return direct("no agent");
  const redial = () => dialAgent(opts.paths, opts.uid).catch(() => null);
  const tunnel = await askAgent(conn, opts.target, redial, opts.signal);
  if (!tunnel) return direct("agent hung up");
  opts.logger.debug("connecting through agent", attrs);
  await spliceToAgent(opts.local(), tunnel.conn, tunnel.answer, opts.signal);
  return true;
}
