/** Real OpenSSH through the tunnel: ssh with a ProxyCommand, and scp through a port-forward. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  cliArgv,
  connectArgs,
  run,
  startListener,
  startPortForward,
  startRelayServer,
} from "../helpers/proc.ts";
import { randomBytes } from "../helpers/servers.ts";
import { sshAvailable, startSshd } from "../helpers/sshd.ts";

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

async function sha256File(path: string): Promise<string> {
  return createHash("sha256").update(await Deno.readFile(path)).digest("hex");
}

Deno.test({
  name: "ssh: ProxyCommand through `relay-sender connect` runs a remote command",
  ignore: !sshAvailable,
  async fn() {
    await using sshd = await startSshd();
    await using relay = await startRelayServer();
    await using _listener = await startListener(relay);
    const proxy = [Deno.execPath(), ...cliArgv(connectArgs(relay, "%h:%p"))].map(shellQuote).join(
      " ",
    );
    const r = await run("ssh", [
      ...sshd.clientOptions,
      "-o",
      `ProxyCommand=${proxy}`,
      "-p",
      String(sshd.port),
      `${sshd.user}@127.0.0.1`,
      "echo hello",
    ], { env: relay.env, deadlineMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.text, "hello\n");
  },
});

Deno.test({
  name: "ssh: scp of 10 MiB through a port-forward arrives byte-identical",
  ignore: !sshAvailable,
  async fn() {
    await using sshd = await startSshd();
    await using relay = await startRelayServer();
    await using _listener = await startListener(relay);
    await using pf = await startPortForward(relay, `127.0.0.1:${sshd.port}`);
    const src = `${sshd.dir}/payload.bin`;
    const dst = `${sshd.dir}/copy.bin`;
    await Deno.writeFile(src, randomBytes(10 * 1024 * 1024));
    const r = await run("scp", [
      ...sshd.clientOptions,
      "-q",
      "-P",
      String(pf.port),
      src,
      `${sshd.user}@127.0.0.1:${dst}`,
    ], { deadlineMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await sha256File(dst), await sha256File(src));
  },
});
