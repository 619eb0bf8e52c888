/** The e2e harness itself: processes, log waits, RSS sampling, the targets and the throw-away sshd. */
import assert from "node:assert/strict";
import { Proc, readMem, run } from "../helpers/proc.ts";
import {
  httpBody,
  readAll,
  startEchoServer,
  startHttpServer,
  startRequestReplyServer,
  startSlowReader,
  writeAll,
} from "../helpers/servers.ts";
import { sshAvailable, startSshd } from "../helpers/sshd.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function denoEval(code: string, opts: ConstructorParameters<typeof Proc>[2] = {}): Proc {
  return new Proc(Deno.execPath(), ["eval", code], { name: "deno eval", ...opts });
}

Deno.test("proc: waitForLine sees stderr lines, kill awaits the exit", async () => {
  await using p = denoEval(
    `console.error("starting"); console.error("ready port=1234"); setInterval(() => {}, 1000);`,
  );
  const m = await p.waitForLine(/ready port=(\d+)/, 10_000);
  assert.equal(m[1], "1234");
  const mem = p.mem();
  assert.ok(mem && mem.rss > 0 && mem.hwm >= mem.rss, `mem ${JSON.stringify(mem)}`);
  const status = await p.kill("SIGTERM");
  assert.equal(status.success, false);
  assert.equal(status.signal, "SIGTERM");
  assert.equal(readMem(p.pid), undefined);
});

Deno.test("proc: waitForLine rejects when the process ends without the line", async () => {
  await using p = denoEval(`console.error("bye"); Deno.exit(3);`);
  await assert.rejects(p.waitForLine(/never/, 10_000), /ended before line/);
  assert.equal((await p.wait()).code, 3);
  assert.match(p.stderr, /bye/);
});

Deno.test("proc: waitForLine rejects at its deadline with the output so far", async () => {
  await using p = denoEval(`console.error("alive"); setInterval(() => {}, 1000);`);
  await p.waitForLine(/alive/);
  await assert.rejects(p.waitForLine(/never/, 200), /within 200 ms[\s\S]*alive/);
});

Deno.test("proc: piped stdin and stdout lines", async () => {
  await using p = denoEval(
    `for await (const c of Deno.stdin.readable) await Deno.stdout.write(c);`,
    { stdin: "piped", stdout: "lines" },
  );
  await p.writeStdin("one\ntwo\n");
  await p.waitForLine(/^two$/, 10_000, { stream: "stdout" });
  await p.closeStdin();
  assert.equal((await p.wait()).code, 0);
  assert.deepEqual(p.stdoutLines, ["one", "two"]);
});

Deno.test("run: stdin in, stdout out, exit code", async () => {
  const r = await run(Deno.execPath(), [
    "eval",
    `const t = await new Response(Deno.stdin.readable).text(); console.log(t.toUpperCase()); Deno.exit(4);`,
  ], { stdin: "abc" });
  assert.equal(r.code, 4);
  assert.equal(r.text, "ABC\n");
});

Deno.test("echo server: echoes and half-closes after the client's EOF", async () => {
  await using echo = startEchoServer();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: echo.port });
  try {
    await writeAll(conn, enc.encode("ping"));
    await conn.closeWrite();
    assert.equal(dec.decode(await readAll(conn)), "ping");
  } finally {
    conn.close();
  }
});

Deno.test("request/reply server: answers after the request's EOF", async () => {
  await using srv = startRequestReplyServer((req) => enc.encode(`got ${req.length}`));
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: srv.port });
  try {
    await writeAll(conn, new Uint8Array(1000));
    await conn.closeWrite();
    assert.equal(dec.decode(await readAll(conn)), "got 1000");
  } finally {
    conn.close();
  }
});

Deno.test("http server answers GET", async () => {
  await using http = startHttpServer();
  const res = await fetch(`http://${http.addr}/x`);
  assert.equal(await res.text(), httpBody("/x"));
  assert.equal(http.served, 1);
});

Deno.test("slow reader takes bytes slowly and closes cleanly", async () => {
  await using slow = startSlowReader(64 * 1024);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: slow.port });
  try {
    await writeAll(conn, new Uint8Array(8 * 1024));
    await conn.closeWrite();
    // Less than one slice, then our EOF: the reader takes it all and closes its end.
    assert.equal(await conn.read(new Uint8Array(1)), null);
    assert.equal(slow.received, 8 * 1024);
    assert.equal(slow.accepted, 1);
  } finally {
    conn.close();
  }
});

Deno.test({
  name: "sshd: ssh runs a remote command with the generated key",
  ignore: !sshAvailable,
  async fn() {
    await using sshd = await startSshd();
    const r = await run("ssh", [
      ...sshd.clientOptions,
      "-p",
      String(sshd.port),
      `${sshd.user}@127.0.0.1`,
      "echo hello",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.text, "hello\n");
  },
});
