/**
 * The agent directory's guarantee: a real directory (not a symlink), owned by us, with no access
 * for group or others. It is what keeps other users off the socket (Deno cannot read a Unix peer's
 * credentials), so a directory that breaks it is refused, never repaired: someone else made it.
 */
import { AztunnelError } from "../errors.ts";

/** The directory exists but is not ours alone (code `agent_dir_unsafe`). */
export class AgentDirError extends AztunnelError {
  constructor(message: string) {
    super("agent_dir_unsafe", message);
    this.name = "AgentDirError";
  }
}

const octal = (mode: number) => (mode & 0o777).toString(8).padStart(4, "0");

/** Throws AgentDirError unless `dir` is a directory owned by `uid` with mode 0700 or stricter. */
export async function checkPrivateDir(dir: string, uid: number): Promise<void> {
  const info = await Deno.lstat(dir);
  if (info.isSymlink || !info.isDirectory) {
    throw new AgentDirError(`agent directory ${dir} is not a directory: remove it`);
  }
  if (info.uid !== uid) {
    throw new AgentDirError(
      `agent directory ${dir} is owned by uid ${info.uid}, not ${uid}: remove it, or set XDG_RUNTIME_DIR or TMPDIR elsewhere`,
    );
  }
  const mode = info.mode ?? 0;
  if ((mode & 0o077) !== 0) {
    throw new AgentDirError(
      `agent directory ${dir} has mode ${
        octal(mode)
      }, group or others have access: chmod 700 ${dir}`,
    );
  }
}

/** `checkPrivateDir`, or false when `dir` does not exist (no agent has run). */
export async function privateDirExists(dir: string, uid: number): Promise<boolean> {
  try {
    await checkPrivateDir(dir, uid);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** Creates `dir` with mode 0700 (its parent must exist), or checks the one that is there. */
export async function ensurePrivateDir(dir: string, uid: number): Promise<void> {
  try {
    await Deno.mkdir(dir, { mode: 0o700 });
    // The umask can only take bits away; this undoes one that took the owner's too.
    await Deno.chmod(dir, 0o700);
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  }
  await checkPrivateDir(dir, uid);
}
