/**
 * What users see when things go wrong: a bad key, no listener yet, a listener that dies, and a
 * listener asked to stop while a tunnel is open.
 */
import assert from "node:assert/strict";
import {
  cliArgv,
  connectArgs,
  Proc,
  runCli,
  sasEnv,
  startListener,
  startPortForward,
  startRelayServer,
  withDeadline,
} from "../helpers/proc.ts";
import { readExactly, startEchoServer, writeAll } from "../helpers/servers.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** No key, no signature and no unredacted token anywhere in `text`. */
function assertNoSecrets(text: string, keys: string[]) {
  for (const key of keys) assert.ok(!text.includes(key), `a SAS key leaked:\n${text}`);
  assert.doesNotMatch(text, /sb-hc-token=(?!REDACTED)/, "an unredacted sb-hc-token leaked");
  assert.doesNotMatch(text, /SharedAccessSignature\s+sr=/, "a SAS token leaked");
  assert.doesNotMatch(text, /[?&]sig=[^&\s"]/, "a SAS signature leaked");
}

/** One echo round trip on an open connection. */
async function roundTrip(conn: Deno.Conn, text: string) {
  const data = enc.encode(text);
  await writeAll(conn, data);
  assert.equal(dec.decode(await readExactly(conn, data.length)), text);
}

Deno.test("failure: a bad key fails `connect` fast with exit 1 and leaks no secret", async () => {
  await using relay = await startRelayServer();
  const wrong = sasEnv();
  const started = Date.now();
  const r = await runCli(
    connectArgs(relay, "127.0.0.1:22", { globalArgs: ["--log-level", "debug"] }),
    { env: { ...relay.env, AZTUNNEL_KEY: wrong.AZTUNNEL_KEY }, stdin: "", deadlineMs: 20_000 },
  );
  const elapsed = Date.now() - started;
  assert.equal(r.code, 1, r.stderr);
  assert.ok(elapsed < 10_000, `took ${elapsed} ms`);
  assert.match(r.stderr, /^aztunnel: error: .*(401|unauthori[sz]ed|auth)/im);
  assert.equal(r.text, "", "nothing on stdout");
  const everything = [r.stderr, r.text, relay.proc.stderr].join("\n");
  assertNoSecrets(everything, [relay.env.AZTUNNEL_KEY, wrong.AZTUNNEL_KEY]);
});

Deno.test("failure: with no listener the sender retries and succeeds once one starts", async () => {
  await using echo = startEchoServer();
  await using relay = await startRelayServer();
  const args = connectArgs(relay, echo.addr, { globalArgs: ["--log-level", "debug"] });
  await using sender = new Proc(Deno.execPath(), cliArgv(args), {
    env: relay.env,
    stdin: "piped",
    stdout: "lines",
    name: "connect",
  });
  await sender.waitForLine(/relay dial failed \(retrying\)/);
  await using _listener = await startListener(relay);
  await sender.writeStdin("hello through a late listener\n");
  await sender.waitForLine(/^hello through a late listener$/, 30_000, { stream: "stdout" });
  await sender.closeStdin();
  const status = await sender.wait(15_000);
  assert.equal(status.code, 0, sender.stderr);
  assertNoSecrets(sender.stderr, [relay.env.AZTUNNEL_KEY]);
});

Deno.test("failure: a SIGKILLed listener ends its tunnels; a new listener takes new connections", async () => {
  await using echo = startEchoServer();
  await using relay = await startRelayServer();
  const first = await startListener(relay, { name: "listener-1" });
  await using _first = first;
  await using pf = await startPortForward(relay, echo.addr);

  const conn = await Deno.connect({ hostname: "127.0.0.1", port: pf.port });
  try {
    await roundTrip(conn, "before the crash");
    assert.equal((await first.kill("SIGKILL")).signal, "SIGKILL");
    // The orphaned tunnel must end (EOF or reset), not hang.
    const ended = withDeadline(
      conn.read(new Uint8Array(1024)).then((n) => n, () => null),
      15_000,
      "the tunnel of the killed listener",
    );
    assert.equal(await ended, null);
  } finally {
    conn.close();
  }

  await using _second = await startListener(relay, { name: "listener-2" });
  const fresh = await Deno.connect({ hostname: "127.0.0.1", port: pf.port });
  try {
    await roundTrip(fresh, "after the restart");
  } finally {
    fresh.close();
  }
});

Deno.test("failure: SIGTERM drains — the open tunnel finishes, then the listener (and the rest) exit 0", async () => {
  await using echo = startEchoServer();
  await using relay = await startRelayServer();
  await using listener = await startListener(relay, { args: ["--drain-timeout", "20s"] });
  await using pf = await startPortForward(relay, echo.addr);

  const conn = await Deno.connect({ hostname: "127.0.0.1", port: pf.port });
  try {
    await roundTrip(conn, "before SIGTERM");
    listener.child.kill("SIGTERM");
    // Once the listener has left the relay, the tunnel it already carries must still work.
    await relay.proc.waitForLine(/msg="listener unregistered"/, 15_000);
    await roundTrip(conn, "during the drain");
    assert.equal(listener.exitStatus, undefined, "the listener quit with a tunnel open");
  } finally {
    conn.close();
  }
  const status = await listener.wait(15_000);
  assert.equal(status.code, 0, listener.stderr);
  // The other long-running commands stop just as cleanly.
  for (const p of [pf.proc, relay.proc]) {
    const s = await p.kill("SIGTERM");
    assert.equal(s.code, 0, `${p.name}: ${p.stderr}`);
  }
});
