import assert from "node:assert/strict";
import { closeQuietly } from "../../lib/async.ts";
import { dialAgent } from "../../lib/agent/client.ts";
import { type AgentPaths, agentPaths } from "../../lib/agent/paths.ts";
import { AgentDirError } from "../../lib/agent/private_dir.ts";
import { AgentRunningError, claimSocket } from "../../lib/agent/socket.ts";
import { getLogger } from "../../lib/observe/log.ts";
import { captureLogs } from "../helpers/logs.ts";
import { run } from "../helpers/proc.ts";

const uid = Deno.uid() ?? 0;
const logger = getLogger({ side: "agent" });
const ep = { scheme: "ws", host: "127.0.0.1:1" } as const;

/** Paths under a fresh XDG_RUNTIME_DIR that others may traverse (so only our 0700 dir guards). */
async function withPaths(fn: (paths: AgentPaths) => Promise<void>): Promise<void> {
  const runtime = await Deno.makeTempDir({ prefix: "agent-run-" });
  await Deno.chmod(runtime, 0o755);
  try {
    await fn(await agentPaths(ep, "hc", new Map([["XDG_RUNTIME_DIR", runtime]]), uid));
  } finally {
    await Deno.remove(runtime, { recursive: true });
  }
}

/** A socket file at `path` nobody listens on, as a killed agent leaves it. */
async function staleSocket(path: string): Promise<void> {
  const tmp = `${path}.tmp`;
  const l = Deno.listen({ transport: "unix", path: tmp });
  await Deno.link(tmp, path);
  // Deno unlinks its own path on close; the hard link stays behind, unserved.
  l.close();
}

Deno.test("claimSocket: directory 0700, socket 0600, removed on release", () =>
  withPaths(async (paths) => {
    const claimed = await claimSocket(paths, uid, logger);
    assert.equal((await Deno.lstat(paths.dir)).mode! & 0o777, 0o700);
    const info = await Deno.lstat(paths.socket);
    assert.ok(info.isSocket);
    assert.equal(info.mode! & 0o777, 0o600);
    assert.equal(info.uid, uid);
    const conn = await dialAgent(paths, uid);
    assert.ok(conn);
    conn.close();
    await claimed.release();
    await assert.rejects(Deno.lstat(paths.socket), Deno.errors.NotFound);
    assert.equal(await dialAgent(paths, uid), null);
  }));

Deno.test("claimSocket: a second agent for the same socket is refused while the first runs", () =>
  withPaths(async (paths) => {
    const first = await claimSocket(paths, uid, logger);
    try {
      await assert.rejects(claimSocket(paths, uid, logger), (err: Error) => {
        assert.ok(err instanceof AgentRunningError);
        assert.equal(err.code, "agent_running");
        assert.equal(err.message, `an agent already serves ${paths.socket}`);
        return true;
      });
    } finally {
      await first.release();
    }
    // Released: the next one takes over.
    await (await claimSocket(paths, uid, logger)).release();
  }));

Deno.test("claimSocket: a stale socket is removed and replaced", () =>
  withPaths(async (paths) => {
    await using logs = await captureLogs();
    await Deno.mkdir(paths.dir, { mode: 0o700 });
    await staleSocket(paths.socket);
    assert.equal(await dialAgent(paths, uid), null, "nobody listens on a stale socket");
    const claimed = await claimSocket(paths, uid, logger);
    try {
      await logs.waitFor([/removed stale agent socket/, new RegExp(`socket=${paths.socket}`)]);
      const conn = await dialAgent(paths, uid);
      assert.ok(conn, "the new socket answers");
      conn.close();
    } finally {
      await claimed.release();
    }
  }));

Deno.test("claimSocket: a socket that answers (another agent) or a plain file is left alone", () =>
  withPaths(async (paths) => {
    await Deno.mkdir(paths.dir, { mode: 0o700 });
    const other = Deno.listen({ transport: "unix", path: paths.socket });
    const accepted = other.accept().then(closeQuietly, () => {});
    try {
      await assert.rejects(claimSocket(paths, uid, logger), AgentRunningError);
    } finally {
      await accepted;
      other.close();
    }
    await Deno.writeTextFile(paths.socket, "");
    await assert.rejects(claimSocket(paths, uid, logger), { code: "agent_socket_invalid" });
    assert.ok((await Deno.lstat(paths.socket)).isFile);
  }));

Deno.test("claimSocket and dialAgent: an unsafe directory is refused, not used", () =>
  withPaths(async (paths) => {
    await Deno.mkdir(paths.dir, { mode: 0o700 });
    await Deno.chmod(paths.dir, 0o777);
    await assert.rejects(claimSocket(paths, uid, logger), AgentDirError);
    await assert.rejects(dialAgent(paths, uid), AgentDirError);
    await Deno.chmod(paths.dir, 0o700);
    assert.equal(await dialAgent(paths, uid), null, "no socket yet");
  }));

/** How this host can run a command as `nobody`, or why it cannot. */
function asNobody(): { argv: string[] } | { skip: string } {
  if (uid !== 0) return { skip: "not root" };
  for (const dir of ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]) {
    try {
      Deno.statSync(`${dir}/setpriv`);
      return { argv: [`${dir}/setpriv`, "--reuid=nobody", "--regid=nogroup", "--clear-groups"] };
    } catch {
      // not here
    }
  }
  return { skip: "no setpriv" };
}
const nobody = asNobody();

Deno.test({
  name: "agent socket: another user cannot connect (as root: a process running as nobody)",
  ignore: "skip" in nobody,
  fn: () =>
    withPaths(async (paths) => {
      if (!("argv" in nobody)) return;
      const claimed = await claimSocket(paths, uid, logger);
      const deno = await Deno.makeTempDir({ prefix: "agent-nobody-" });
      await Deno.chmod(deno, 0o777);
      try {
        const probe =
          `try { (await Deno.connect({ transport: "unix", path: Deno.args[0] })).close();
          console.log("connected"); } catch (e) { console.log(e.name); }`;
        const probeAsNobody = async () => {
          const res = await run(nobody.argv[0], [
            ...nobody.argv.slice(1),
            "env",
            `DENO_DIR=${deno}`,
            `HOME=${deno}`,
            Deno.execPath(),
            "eval",
            probe,
            paths.socket,
          ]);
          assert.equal(res.code, 0, res.stderr);
          return res.text.trim();
        };
        assert.equal(await probeAsNobody(), "PermissionDenied");
        // Each guard alone holds: the socket's 0600 behind a directory nobody may pass through…
        await Deno.chmod(paths.dir, 0o711);
        assert.equal(await probeAsNobody(), "PermissionDenied");
        // …and without both, the probe does get in (so the refusals above were not its own fault).
        await Deno.chmod(paths.socket, 0o666);
        assert.equal(await probeAsNobody(), "connected");
        await Deno.chmod(paths.socket, 0o600);
        await Deno.chmod(paths.dir, 0o700);
        // The same probe as ourselves connects: only the other user is kept out.
        const me = await run(Deno.execPath(), ["eval", probe, paths.socket]);
        assert.equal(me.text.trim(), "connected");
      } finally {
        await claimed.release();
        await Deno.remove(deno, { recursive: true });
      }
    }),
});
