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
import { roundTrip, startEchoServer } from "../helpers/servers.ts";

/** No key, no signature and no unredacted token anywhere in `text`. */
function assertNoSecrets(text: string, keys: string[]) {
  for (const key of keys) assert.ok(!text.includes(key), `a SAS key leaked:\n${text}`);
  assert.doesNotMatch(text, /sb-hc-token=(?!REDACTED)/, "an unredacted sb-hc-token leaked");
  assert.doesNotMatch(text, /SharedAccessSignature\s+sr=/, "a SAS token leaked");
  assert.doesNotMatch(text, /[?&]sig=[^&\s"]/, "a SAS signature leaked");
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
  // The cut is a failure the user can see, not a quiet normal end.
  const warn = await pf.proc.waitForLine(/level=WARN msg="forward failed"/, 15_000);
  assert.match(
    warn.input ?? "",
    /error="tunnel closed by peer before end of data \(close 1000: peer connection lost\)"/,
  );

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

Deno.test("failure: `connect` through a SIGKILLed listener exits 1 and says why", async () => {
  await using echo = startEchoServer();
  await using relay = await startRelayServer();
  const listener = await startListener(relay);
  await using _listener = listener;
  await using sender = new Proc(Deno.execPath(), cliArgv(connectArgs(relay, echo.addr)), {
    env: relay.env,
    stdin: "piped",
    stdout: "lines",
    name: "connect",
  });
  await sender.writeStdin("before the crash\n");
  await sender.waitForLine(/^before the crash$/, 20_000, { stream: "stdout" });
  assert.equal((await listener.kill("SIGKILL")).signal, "SIGKILL");
  // stdin stays open: the cut alone must end the process.
  const status = await sender.wait(15_000);
  assert.equal(status.code, 1, sender.stderr);
  assert.match(
    sender.stderr,
    /^aztunnel: error: tunnel failed: tunnel closed by peer before end of data \(close 1000: peer connection lost\)$/m,
  );
});

Deno.test("failure: Ctrl-C twice on port-forward with an open tunnel exits 0 at once", async () => {
  await using echo = startEchoServer();
  await using relay = await startRelayServer();
  await using _listener = await startListener(relay);
  await using pf = await startPortForward(relay, echo.addr);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: pf.port });
  try {
    await roundTrip(conn, "open tunnel");
    pf.proc.child.kill("SIGINT");
    await pf.proc.waitForLine(/level=INFO msg="draining tunnels" count=1 timeout=10s$/);
    const started = Date.now();
    pf.proc.child.kill("SIGINT");
    const status = await pf.proc.wait(5_000);
    assert.equal(status.code, 0, pf.proc.stderr);
    assert.ok(Date.now() - started < 3_000, `exit took ${Date.now() - started} ms`);
    assert.match(pf.proc.stderr, /msg="second signal, closing 1 tunnels now" count=1/);
    assert.equal(await conn.read(new Uint8Array(64)).catch(() => null), null);
  } finally {
    conn.close();
  }
});

Deno.test("failure: Ctrl-C while the relay dial retries (no listener) exits 0 within a second", async () => {
  await using relay = await startRelayServer();
  await using pf = await startPortForward(relay, "127.0.0.1:22");
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: pf.port });
  try {
    await pf.proc.waitForLine(/relay dial failed \(retrying\)/);
    const started = Date.now();
    pf.proc.child.kill("SIGINT");
    const status = await pf.proc.wait(5_000);
    assert.equal(status.code, 0, pf.proc.stderr);
    assert.ok(Date.now() - started < 1_500, `exit took ${Date.now() - started} ms`);
    assert.doesNotMatch(pf.proc.stderr, /draining tunnels/);
    assert.equal(await conn.read(new Uint8Array(64)).catch(() => null), null);
  } finally {
    conn.close();
  }
});

Deno.test("failure: Ctrl-C on `connect` before the tunnel opened exits 1", async () => {
  await using relay = await startRelayServer();
  await using sender = new Proc(
    Deno.execPath(),
    cliArgv(connectArgs(relay, "127.0.0.1:22", { globalArgs: ["--log-level", "debug"] })),
    { env: relay.env, stdin: "piped", name: "connect" },
  );
  await sender.waitForLine(/relay dial failed \(retrying\)/);
  sender.child.kill("SIGINT");
  const status = await sender.wait(5_000);
  assert.equal(status.code, 1, sender.stderr);
  assert.match(sender.stderr, /^aztunnel: error: interrupted before the tunnel opened$/m);
});
