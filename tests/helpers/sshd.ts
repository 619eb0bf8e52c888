/**
 * A throw-away OpenSSH server on 127.0.0.1 for the e2e tests and the benchmark: temporary host key,
 * a generated client key in a temporary authorized_keys, run as the current user. Tests that need it
 * use `ignore: !sshAvailable` so a machine without OpenSSH skips them instead of failing.
 */
import { freePort, Proc, run } from "./proc.ts";

const SSHD = "/usr/sbin/sshd";

function which(program: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin:/bin").split(":")) {
    try {
      const path = `${dir}/${program}`;
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** True when sshd, ssh, scp and ssh-keygen are all installed. */
export const sshAvailable = exists(SSHD) && ["ssh", "scp", "ssh-keygen"].every((p) => which(p));

export interface Sshd extends AsyncDisposable {
  proc: Proc;
  port: number;
  /** The login name (the current user). */
  user: string;
  /** The temporary directory holding keys and config; removed on dispose. */
  dir: string;
  /** Client private key file. */
  identity: string;
  /**
   * ssh/scp options that log in non-interactively with the generated key and ignore host keys:
   * `ssh ...sshd.clientOptions -p PORT user@127.0.0.1 cmd`.
   */
  clientOptions: string[];
}

async function keygen(path: string): Promise<void> {
  const r = await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path]);
  if (r.code !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
}

async function currentUser(): Promise<string> {
  const r = await run("id", ["-un"]);
  return r.text.trim() || (Deno.env.get("USER") ?? "root");
}

/** Starts sshd in the foreground (`-D -e`) and resolves once it listens. */
export async function startSshd(): Promise<Sshd> {
  const dir = await Deno.makeTempDir({ prefix: "aztunnel-sshd-" });
  try {
    const hostKey = `${dir}/host_ed25519`;
    const identity = `${dir}/id_ed25519`;
    await Promise.all([keygen(hostKey), keygen(identity)]);
    await Deno.copyFile(`${identity}.pub`, `${dir}/authorized_keys`);
    // sshd refuses to start as root without its privilege separation directory.
    await Deno.mkdir("/run/sshd", { recursive: true }).catch(() => {});
    const user = await currentUser();
    const port = freePort();
    const config = [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${dir}/authorized_keys`,
      "PubkeyAuthentication yes",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PermitRootLogin prohibit-password",
      "StrictModes no",
      "UsePAM no",
      "PidFile none",
      "AllowTcpForwarding yes",
      "X11Forwarding no",
      "PrintMotd no",
      "Subsystem sftp internal-sftp",
      "LogLevel INFO",
      "",
    ].join("\n");
    await Deno.writeTextFile(`${dir}/sshd_config`, config);
    const proc = new Proc(SSHD, ["-D", "-e", "-f", `${dir}/sshd_config`], { name: "sshd" });
    try {
      await proc.waitForLine(/Server listening on 127\.0\.0\.1 port/, 10_000);
    } catch (err) {
      await proc.kill("SIGKILL");
      throw err;
    }
    const clientOptions = [
      "-i",
      identity,
      "-F",
      "/dev/null",
      "-o",
      "IdentitiesOnly=yes",
      "-o",
      "StrictHostKeyChecking=no",
      "-o",
      "UserKnownHostsFile=/dev/null",
      "-o",
      "BatchMode=yes",
      "-o",
      "LogLevel=ERROR",
      "-o",
      "ConnectTimeout=20",
    ];
    return {
      proc,
      port,
      user,
      dir,
      identity,
      clientOptions,
      async [Symbol.asyncDispose]() {
        await proc.kill("SIGTERM");
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      },
    };
  } catch (err) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }
}
