/**
 * Claiming the agent socket: the private directory, the lock that makes one agent per socket, the
 * removal of a stale socket (an agent that died leaves its file behind, and nobody listens on it),
 * then the listener with mode 0600; released by closing and removing what we made.
 */
import { closeQuietly } from "../async.ts";
import { AztunnelError } from "../errors.ts";
import type { Logger } from "../observe/log.ts";
import type { AgentPaths } from "./paths.ts";
import { ensurePrivateDir } from "./private_dir.ts";

export interface ClaimedSocket {
  listener: Deno.UnixListener;
  /** Closes the listener, removes the socket (if still ours) and releases the lock. */
  release(): Promise<void>;
}

/** Another agent serves the socket (code `agent_running`). */
export class AgentRunningError extends AztunnelError {
  constructor(socket: string) {
    super("agent_running", `an agent already serves ${socket}`);
    this.name = "AgentRunningError";
  }
}

/** Throws AgentDirError, AgentRunningError or the OS error of a failed listen. */
export async function claimSocket(
  paths: AgentPaths,
  uid: number,
  logger: Logger,
): Promise<ClaimedSocket> {
  await ensurePrivateDir(paths.dir, uid);
  const lock = await Deno.open(paths.lock, { read: true, write: true, create: true, mode: 0o600 });
  try {
    if (!(await lock.tryLock(true))) throw new AgentRunningError(paths.socket);
    await removeStale(paths.socket, logger);
    const listener = Deno.listen({ transport: "unix", path: paths.socket });
    await Deno.chmod(paths.socket, 0o600);
    const { ino } = await Deno.lstat(paths.socket);
    let released: Promise<void> | undefined;
    const release = async () => {
      closeQuietly(listener);
      try {
        if ((await Deno.lstat(paths.socket)).ino === ino) await Deno.remove(paths.socket);
      } catch {
        // already gone
      }
      closeQuietly(lock);
    };
    return { listener, release: () => released ??= release() };
  } catch (err) {
    closeQuietly(lock);
    throw err;
  }
}

/** Removes a socket nobody listens on; throws AgentRunningError when one answers. */
async function removeStale(socket: string, logger: Logger): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(socket);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  if (!info.isSocket) {
    throw new AztunnelError("agent_socket_invalid", `${socket} exists and is not a socket`);
  }
  try {
    closeQuietly(await Deno.connect({ transport: "unix", path: socket }));
    throw new AgentRunningError(socket);
  } catch (err) {
    if (!(err instanceof Deno.errors.ConnectionRefused)) throw err;
  }
  await Deno.remove(socket);
  logger.info("removed stale agent socket", { socket });
}
