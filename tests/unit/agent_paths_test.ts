import assert from "node:assert/strict";
import { agentDir, agentPaths, agentSupported } from "../../lib/agent/paths.ts";
import {
  AgentDirError,
  checkPrivateDir,
  ensurePrivateDir,
  privateDirExists,
} from "../../lib/agent/private_dir.ts";

const env = (vars: Record<string, string>) => new Map(Object.entries(vars));
const uid = Deno.uid() ?? 0;
const isRoot = uid === 0;
const ep = { scheme: "wss", host: "ns.servicebus.windows.net" } as const;

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "agent-paths-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("agentDir: XDG_RUNTIME_DIR/aztunnel, else TMPDIR/aztunnel-UID, else /tmp", () => {
  assert.equal(agentDir(env({ XDG_RUNTIME_DIR: "/run/user/7/" }), 7), "/run/user/7/aztunnel");
  assert.equal(
    agentDir(env({ TMPDIR: "/var/folders/x/T/" }), 501),
    "/var/folders/x/T/aztunnel-501",
  );
  assert.equal(agentDir(env({}), 1000), "/tmp/aztunnel-1000");
  // A relative XDG_RUNTIME_DIR is invalid by the spec and ignored.
  assert.equal(agentDir(env({ XDG_RUNTIME_DIR: "run", TMPDIR: "/t" }), 3), "/t/aztunnel-3");
});

Deno.test("agentPaths: one socket per relay + hyco, named by a hash", async () => {
  const e = env({ XDG_RUNTIME_DIR: "/run/user/1" });
  const a = await agentPaths(ep, "hc", e, 1);
  assert.match(a.socket, /^\/run\/user\/1\/aztunnel\/[0-9a-f]{16}\.sock$/);
  assert.equal(a.lock, a.socket.replace(/\.sock$/, ".lock"));
  assert.equal(a.dir, "/run/user/1/aztunnel");
  assert.equal(
    (await agentPaths({ ...ep, host: "NS.servicebus.windows.net" }, "hc", e, 1)).socket,
    a.socket,
  );
  assert.notEqual((await agentPaths(ep, "other", e, 1)).socket, a.socket);
  assert.notEqual((await agentPaths({ scheme: "ws", host: ep.host }, "hc", e, 1)).socket, a.socket);
  assert.notEqual((await agentPaths({ ...ep, host: "x.example" }, "hc", e, 1)).socket, a.socket);
});

Deno.test("agentPaths: a socket path longer than sun_path allows is a clear error", async () => {
  const long = env({ XDG_RUNTIME_DIR: "/" + "d".repeat(100) });
  await assert.rejects(agentPaths(ep, "hc", long, 1), {
    code: "agent_path",
    message: /longer than 103 bytes/,
  });
});

Deno.test("agentSupported: not on Windows", () => {
  assert.equal(agentSupported("windows"), false);
  assert.equal(agentSupported("linux"), true);
  assert.equal(agentSupported("darwin"), true);
});

Deno.test("ensurePrivateDir: creates 0700 even under a umask that would keep it from us", () =>
  withTempDir(async (tmp) => {
    const dir = `${tmp}/aztunnel`;
    assert.equal(await privateDirExists(dir, uid), false);
    const old = Deno.umask(0o777);
    try {
      await ensurePrivateDir(dir, uid);
    } finally {
      Deno.umask(old);
    }
    const info = await Deno.lstat(dir);
    assert.equal((info.mode ?? 0) & 0o777, 0o700);
    assert.equal(info.uid, uid);
    assert.equal(await privateDirExists(dir, uid), true);
    // A second agent finds it as it is.
    await ensurePrivateDir(dir, uid);
  }));

Deno.test("ensurePrivateDir: refuses a looser mode, a symlink or a file, and repairs nothing", () =>
  withTempDir(async (tmp) => {
    const dir = `${tmp}/aztunnel`;
    await Deno.mkdir(dir);
    await Deno.chmod(dir, 0o755);
    await assert.rejects(ensurePrivateDir(dir, uid), (err: Error) => {
      assert.ok(err instanceof AgentDirError);
      assert.equal(err.code, "agent_dir_unsafe");
      assert.equal(
        err.message,
        `agent directory ${dir} has mode 0755, group or others have access: chmod 700 ${dir}`,
      );
      return true;
    });
    assert.equal((await Deno.lstat(dir)).mode! & 0o777, 0o755);
    await Deno.chmod(dir, 0o710);
    await assert.rejects(privateDirExists(dir, uid), AgentDirError);

    const real = `${tmp}/real`;
    await Deno.mkdir(real, { mode: 0o700 });
    await Deno.symlink(real, `${tmp}/link`);
    await assert.rejects(checkPrivateDir(`${tmp}/link`, uid), { message: /is not a directory/ });
    await Deno.writeTextFile(`${tmp}/file`, "");
    await assert.rejects(ensurePrivateDir(`${tmp}/file`, uid), { message: /is not a directory/ });
  }));

Deno.test("checkPrivateDir: a directory of another user is refused", () =>
  withTempDir(async (tmp) => {
    const dir = `${tmp}/aztunnel`;
    await Deno.mkdir(dir, { mode: 0o700 });
    // As root the directory really changes hands; otherwise it is ours, checked as another uid's.
    if (isRoot) await Deno.chown(dir, 65534, 65534);
    const me = isRoot ? uid : uid + 1;
    const owner = isRoot ? 65534 : uid;
    await assert.rejects(ensurePrivateDir(dir, me), {
      code: "agent_dir_unsafe",
      message:
        `agent directory ${dir} is owned by uid ${owner}, not ${me}: remove it, or set XDG_RUNTIME_DIR or TMPDIR elsewhere`,
    });
  }));
