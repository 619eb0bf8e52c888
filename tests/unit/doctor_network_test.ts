/** lib/doctor/network.ts: the relay address, name resolution, TCP and TLS lines. */
import assert from "node:assert/strict";
import { runChecks } from "../../lib/doctor/checks.ts";
import { networkChecks, relayAddress } from "../../lib/doctor/network.ts";
import { parseRelayEndpoint } from "../../lib/relay/endpoint.ts";
import { makeTestCerts, opensslAvailable } from "../helpers/certs.ts";

async function lines(relay: string, caCerts?: string[]): Promise<string[]> {
  const out: string[] = [];
  const address = relayAddress(parseRelayEndpoint(relay));
  await runChecks(networkChecks({ address, caCerts, proxy: null }), {
    timeoutMs: 5000,
    write: (l) => out.push(l),
  });
  return out;
}

Deno.test("relayAddress: default ports by scheme, explicit ports, IPv6 without brackets", () => {
  assert.deepEqual(relayAddress(parseRelayEndpoint("my-ns")), {
    hostname: "my-ns.servicebus.windows.net",
    port: 443,
    secure: true,
  });
  assert.deepEqual(relayAddress(parseRelayEndpoint("ws://localhost")), {
    hostname: "localhost",
    port: 80,
    secure: false,
  });
  assert.deepEqual(relayAddress(parseRelayEndpoint("wss://[::1]:8443")), {
    hostname: "::1",
    port: 8443,
    secure: true,
  });
});

Deno.test("network checks: localhost is said so; a closed port fails TCP and skips TLS", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  assert.deepEqual(await lines(`wss://localhost:${port}`), [
    "✔ relay name resolves: localhost is a loopback name, nothing to resolve",
    `✖ TCP to relay: cannot connect to localhost:${port}: connection refused; fix: check the ` +
    `port in --relay and that a firewall lets this machine reach localhost:${port}`,
    '- TLS to relay: skipped (needs "TCP to relay")',
  ]);
});

Deno.test({
  name: "network checks: an untrusted certificate names --relay-ca-cert; its CA makes it pass",
  ignore: !opensslAvailable,
  async fn() {
    await using certs = await makeTestCerts();
    const server = Deno.listenTls({
      hostname: "127.0.0.1",
      port: 0,
      cert: certs.cert,
      key: certs.key,
    });
    const serving = (async () => {
      for await (const conn of server) {
        conn.handshake().catch(() => {}).finally(() => conn.close());
      }
    })();
    try {
      const relay = `wss://127.0.0.1:${server.addr.port}`;
      const untrusted = (await lines(relay))[2];
      assert.match(
        untrusted,
        /^✖ TLS to relay: TLS handshake with 127\.0\.0\.1 failed: .*UnknownIssuer/,
      );
      assert.ok(
        untrusted.endsWith(
          "; fix: pass the relay's CA with --relay-ca-cert (or AZTUNNEL_RELAY_CA_CERT)",
        ),
        untrusted,
      );
      assert.deepEqual(
        (await lines(relay, [certs.ca]))[2],
        "✔ TLS to relay: certificate of 127.0.0.1 verified",
      );
    } finally {
      server.close();
      await serving;
    }
  },
});
