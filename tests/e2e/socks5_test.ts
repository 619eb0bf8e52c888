/** The SOCKS5 proxy with a real client (curl) and the reply codes a client sees on failure. */
import assert from "node:assert/strict";
import { freePort, run, startListener, startRelayServer, startSocks5 } from "../helpers/proc.ts";
import { httpBody, socks5Connect, startHttpServer } from "../helpers/servers.ts";

const curlAvailable = await run("curl", ["--version"]).then((r) => r.code === 0, () => false);

Deno.test({
  name: "socks5: curl --socks5 and --socks5-hostname fetch through the tunnel",
  ignore: !curlAvailable,
  async fn() {
    await using http = startHttpServer();
    await using relay = await startRelayServer();
    await using listener = await startListener(relay, { allow: ["127.0.0.1:*", "localhost:*"] });
    await using socks = await startSocks5(relay);
    const proxy = `127.0.0.1:${socks.port}`;

    // --socks5: curl resolves the name itself and sends an IPv4 address.
    const byIp = await run("curl", [
      "-sS",
      "--max-time",
      "20",
      "--socks5",
      proxy,
      `http://127.0.0.1:${http.port}/by-ip`,
    ]);
    assert.equal(byIp.code, 0, byIp.stderr);
    assert.equal(byIp.text, httpBody("/by-ip"));

    // --socks5-hostname: the name travels to the listener, which resolves it.
    const byName = await run("curl", [
      "-sS",
      "--max-time",
      "20",
      "--socks5-hostname",
      proxy,
      `http://localhost:${http.port}/by-name`,
    ]);
    assert.equal(byName.code, 0, byName.stderr);
    assert.equal(byName.text, httpBody("/by-name"));
    await listener.waitForLine(
      new RegExp(`msg="connection requested".* target=localhost:${http.port}`),
    );
    assert.equal(http.served, 2);
  },
});

Deno.test("socks5: a refused target gives reply 0x05 and code=connection_refused", async () => {
  await using relay = await startRelayServer();
  await using listener = await startListener(relay);
  await using socks = await startSocks5(relay);
  const closedPort = freePort();
  const r = await socks5Connect(socks.port, "127.0.0.1", closedPort);
  assert.equal(r.reply, 0x05);
  const line = (await listener.waitForLine(/msg="dial target failed"/)).input ?? "";
  assert.match(line, new RegExp(` target=127\\.0\\.0\\.1:${closedPort}( |$)`));
  assert.match(line, / code=connection_refused( |$)/);
});

Deno.test("socks5: a target outside the allowlist gives reply 0x02", async () => {
  await using relay = await startRelayServer();
  await using listener = await startListener(relay, { allow: ["127.0.0.1:*"] });
  await using socks = await startSocks5(relay);
  const r = await socks5Connect(socks.port, "127.0.0.2", 80);
  assert.equal(r.reply, 0x02);
  const line = (await listener.waitForLine(/msg="target not allowed"/)).input ?? "";
  assert.match(line, / target=127\.0\.0\.2:80( |$)/);
});
