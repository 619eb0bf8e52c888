/**
 * The connect side of the agent socket: find a listening agent (only in a directory that is ours
 * alone, on a socket we own) and ask it for a tunnel.
 */
import { abortable, closeQuietly } from "../async.ts";
import { writeAll } from "../net/write_all.ts";
import type { AgentPaths } from "./paths.ts";
import { privateDirExists } from "./private_dir.ts";
import { AgentRefused, encodeRequest, parseReply, readLine } from "./protocol.ts";

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
