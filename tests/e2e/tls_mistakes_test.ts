/**
 * TLS mistakes answered at once: wss:// against a plain relay-server, a CA served as the relay's
 * own certificate, and `relay-server --tls-self-signed DIR` as the way to do it right.
 */
import assert from "node:assert/strict";
import { makeTestCerts, opensslAvailable } from "../helpers/certs.ts";
import {
  logAttr,
  runCli,
  sasEnv,
  spawnCli,
  startListener,
  startRelayServer,
  withDeadline,
} from "../helpers/proc.ts";

Deno.test("tls: wss:// against a plain relay-server fails at once and both sides say why", async () => {
  await using relay = await startRelayServer();
  const started = performance.now();
  const r = await runCli(
    ["relay-sender", "connect", "--relay", `wss://${relay.addr}`, "--hyco", "h", "127.0.0.1:22"],
    { env: relay.env, deadlineMs: 15_000 },
  );
  // Process start-up included; the old symptom was a 30 s "handshake timed out".
  assert.ok(performance.now() - started < 10_000, `${performance.now() - started} ms`);
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    /^aztunnel: error: dial relay: TLS to wss:\/\/127\.0\.0\.1:\d+\/\$hc\/h failed: the relay does not speak TLS \(it answered in plain text\): use ws:\/\/ instead of wss:\/\//m,
  );
  await relay.proc.waitForLine(
    /level=WARN msg="TLS handshake on a plain ws:\/\/ relay: the client was given wss:\/\/; give it ws:\/\/, or serve wss:\/\/ with --tls-cert\/--tls-key or --tls-self-signed" remote=127\.0\.0\.1:\d+ count=1/,
  );
});

Deno.test("tls: --tls-self-signed DIR serves wss:// and prints the CA line; a restart keeps the CA", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aztunnel-selfsigned-e2e-" });
  try {
    const env = sasEnv();
    const start = async () => {
      const proc = spawnCli(
        ["relay-server", "--bind", "127.0.0.1:0", "--tls-self-signed", `${dir}/tls`],
        { env, stdout: "lines", name: "relay-server" },
      );
      const line = (await proc.waitForLine(/relay-server listening/)).input ?? "";
      const caLine = await proc.waitForLine(/^export AZTUNNEL_RELAY_CA_CERT=/, 20_000, {
        stream: "stdout",
      });
      return { proc, line, caFile: (caLine.input ?? "").split("=")[1] };
    };
    const first = await start();
    let caPem: string;
    try {
      assert.equal(first.caFile, `${await Deno.realPath(dir)}/tls/ca.crt`);
      assert.match(
        first.proc.stderr,
        /msg="serving wss:\/\/ with a self-signed certificate: clients need --relay-ca-cert" ca_cert=\S+ca\.crt issued=ca/,
      );
      const url = logAttr(first.line, "url") ?? "";
      assert.match(url, /^wss:\/\/127\.0\.0\.1:\d+$/);
      caPem = await Deno.readTextFile(first.caFile);
      await using listener = await startListener(
        { proc: first.proc, url, addr: "", env, [Symbol.asyncDispose]: async () => {} },
        { args: ["--relay-ca-cert", first.caFile] },
      );
      assert.match(listener.stderr, /control_started/);
    } finally {
      await first.proc.kill("SIGTERM");
    }
    const second = await start();
    try {
      assert.match(second.proc.stderr, /issued=none/);
      assert.equal(await Deno.readTextFile(second.caFile), caPem);
    } finally {
      await second.proc.kill("SIGTERM");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tls: --tls-self-signed with --tls-cert is a usage error", async () => {
  const r = await runCli([
    "relay-server",
    "--bind",
    "127.0.0.1:0",
    "--tls-self-signed",
    "/tmp/x",
    "--tls-cert",
    "a",
    "--tls-key",
    "b",
  ], { env: sasEnv() });
  assert.equal(r.code, 2, r.stderr);
  assert.equal(
    r.stderr,
    "aztunnel: error: --tls-self-signed and --tls-cert/--tls-key exclude each other\n",
  );
});

Deno.test({
  name: "tls: a CA certificate served as the relay's own is warned about at start-up" +
    (opensslAvailable ? "" : " (ignored: openssl not found)"),
  ignore: !opensslAvailable,
  async fn() {
    await using certs = await makeTestCerts();
    await using relay = await startRelayServer({
      args: ["--tls-cert", certs.caFile, "--tls-key", `${certs.dir}/ca.key`],
    });
    await withDeadline(
      relay.proc.waitForLine(
        /level=WARN msg="--tls-cert \S+ca\.crt is a CA certificate \(basicConstraints CA:TRUE, what `openssl req -x509` makes by default\): TLS clients refuse/,
      ),
      10_000,
      "CA warning",
    );
    // And a client that meets it is told the same, not just "invalid peer certificate".
    const r = await runCli([
      "relay-sender",
      "connect",
      "--relay",
      relay.url.replace("127.0.0.1", "localhost"),
      "--hyco",
      "h",
      "--relay-ca-cert",
      certs.caFile,
      "127.0.0.1:22",
    ], { env: relay.env });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /the relay serves a CA certificate as its own/);
  },
});
