/** `aztunnel demo`: the one-command tour proves its round trips and stops cleanly. */
import assert from "node:assert/strict";
import { runCli, sasEnv, spawnCli } from "../helpers/proc.ts";
import { readAll, socks5Connect, writeAll } from "../helpers/servers.ts";

Deno.test("demo --once: self-check through port-forward and SOCKS5, exit 0", async () => {
  const r = await runCli(["demo", "--once"], {
    env: { AZTUNNEL_KEY_NAME: "", AZTUNNEL_KEY: "" },
    deadlineMs: 30_000,
  });
  assert.equal(r.code, 0, r.stderr + r.text);
  assert.match(r.text, /^\s+ok\s+HTTP GET through the port-forward\s.*200/m);
  assert.match(r.text, /^\s+ok\s+HTTP GET through SOCKS5.*200/m);
  assert.match(r.text, /relay-server\s+ws:\/\/127\.0\.0\.1:\d+/);
});

Deno.test("demo: serves until SIGINT, then exits 0; never prints the user's own key", async () => {
  const env = sasEnv();
  await using demo = spawnCli(["demo"], { env, stdout: "lines", name: "demo" });
  await demo.waitForLine(/Press Ctrl-C to stop/, 30_000, { stream: "stdout" });
  const socksPort = Number(/socks5-proxy\s+127\.0\.0\.1:(\d+)/.exec(demo.stdout)?.[1]);
  const targetPort = Number(/HTTP target\s+http:\/\/127\.0\.0\.1:(\d+)/.exec(demo.stdout)?.[1]);
  assert.ok(socksPort > 0 && targetPort > 0, demo.stdout);

  // The printed SOCKS5 proxy works for a client of our own, by name.
  const r = await socks5Connect(socksPort, "localhost", targetPort);
  assert.equal(r.reply, 0);
  const conn = r.conn!;
  try {
    await writeAll(conn, new TextEncoder().encode("GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"));
    assert.match(new TextDecoder().decode(await readAll(conn)), /^HTTP\/1\.[01] 200/);
  } finally {
    conn.close();
  }

  demo.child.kill("SIGINT");
  const status = await demo.wait(15_000);
  assert.equal(status.code, 0, demo.stderr);
  assert.ok(!(demo.stdout + demo.stderr).includes(env.AZTUNNEL_KEY), "the key was printed");
});
