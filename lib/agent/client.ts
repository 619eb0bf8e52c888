/**
 * The connect side of the agent socket: find a listening agent (only in a directory that is ours
 * alone, on a socket we own) and ask it for a tunnel.
 */
import { abortable, closeQuietly } from "../async.ts";
import { AztunnelError } from "../errors.ts";
import { writeAll } from "../net/write_all.ts";
import type { AgentPaths } from "./paths.ts";
import { privateDirExists } from "./private_dir.ts";
import {
  AgentRefused,
  EARLY_ACK,
  encodeRequest,
  parseReply,
  readLine,
  refusesEarly,
  withPrefix,
} from "./protocol.ts";

/**
 * A connection to the running agent, or null when there is none (no directory, no socket, nobody
 * listening). Throws AgentDirError when the directory is not ours alone.
 */
export async function dialAgent(paths: AgentPaths, uid: number): Promise<Deno.UnixConn | null> {
  if (!(await privateDirExists(paths.dir, uid))) return null;
  try {
    const info = await Deno.lstat(paths.socket);
    if (!info.isSocket || info.uid !== uid) return null;
    return await Deno.connect({ transport: "unix", path: paths.socket });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.ConnectionRefused) {
      return null;
    }
    throw err;
  }
}

/**
 * Asks the agent on `conn` for a tunnel to `target`. Resolves with the bytes that came after `OK`
 * (the start of the data), or null when the agent hung up without answering (it was stopping);
 * throws AgentRefused with the agent's code, or AgentProtocolError. `conn` is closed on failure.
 */
export async function requestTunnel(
  conn: Deno.Conn,
  target: string,
  signal?: AbortSignal,
): Promise<Uint8Array | null> {
  try {
    await writeAll(conn, encodeRequest(target));
    const line = await abortable(readLine(conn), signal);
    if (!line) {
      closeQuietly(conn);
      return null;
    }
    const reply = parseReply(line.line);
    if (!reply.ok) throw new AgentRefused(reply.code, reply.message);
    return line.rest;
  } catch (err) {
    closeQuietly(conn);
    // A write refused by an agent that just closed the socket is the same as no answer.
    if (err instanceof Deno.errors.BrokenPipe || err instanceof Deno.errors.ConnectionReset) {
      return null;
    }
    throw err;
  }
}

export interface AgentTunnel {
  conn: Deno.Conn;
  /**
   * The answer: the bytes that came after `OK`, or a rejection as requestTunnel's (AgentRefused,
   * AgentProtocolError, `agent_failed` for a hang-up once the agent took the request). Local data
   * may be sent on `conn` before it settles: the agent holds it, and discards it on ERR.
   */
  answer: Promise<Uint8Array>;
}

/**
 * Asks the agent on `conn` for a tunnel with early data; an agent that predates it is asked again
 * the older way on a connection from `redial`. Null when the agent hung up without taking the
 * request (nothing was sent yet, so the direct path is safe). Throws as requestTunnel.
 */
export async function askAgent(
  conn: Deno.Conn,
  target: string,
  redial: () => Promise<Deno.Conn | null>,
  signal?: AbortSignal,
): Promise<AgentTunnel | null> {
  let first;
  try {
    await writeAll(conn, encodeRequest(target, true));
    first = await abortable(readLine(conn), signal);
  } catch (err) {
    closeQuietly(conn);
    if (err instanceof Deno.errors.BrokenPipe || err instanceof Deno.errors.ConnectionReset) {
      return null;
    }
    throw err;
  }
  if (!first) {
    closeQuietly(conn);
    return null;
  }
  if (first.line === EARLY_ACK) {
    const answer = readAnswer(conn, first.rest, signal);
    answer.catch(() => closeQuietly(conn));
    return { conn, answer };
  }
  const reply = parseReplyOrClose(conn, first.line);
  if (reply.ok) return { conn, answer: Promise.resolve(first.rest) };
  closeQuietly(conn);
  if (!refusesEarly(reply)) throw new AgentRefused(reply.code, reply.message);
  const again = await redial();
  const head = again && await requestTunnel(again, target, signal);
  return again && head ? { conn: again, answer: Promise.resolve(head) } : null;
}

function parseReplyOrClose(conn: Deno.Conn, line: string) {
  try {
    return parseReply(line);
  } catch (err) {
    closeQuietly(conn);
    throw err;
  }
}

/** The `OK`/`ERR` line after `EARLY` (its read began with `rest`). */
async function readAnswer(
  conn: Deno.Conn,
  rest: Uint8Array,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const line = await abortable(readLine(withPrefix(conn, rest)), signal);
  if (!line) {
    throw new AztunnelError("agent_failed", "agent tunnel failed: the agent hung up unanswered");
  }
  const reply = parseReply(line.line);
  if (!reply.ok) throw new AgentRefused(reply.code, reply.message);
  return line.rest;
}
