/**
 * lib/ws/transport with the DNS cache: TCP goes to the cached address, yet TLS still sends the
 * relay's name as SNI and verifies the certificate against it, so a wrong name still fails.
 */
import assert from "node:assert/strict";
import { closeQuietly } from "../../lib/async.ts";
import { DnsCache } from "../../lib/net/dns_cache.ts";
import { WsError } from "../../lib/ws/errors.ts";
import { type ConnTracker, openTransport } from "../../lib/ws/transport.ts";
import { makeTestCerts, opensslAvailable } from "../helpers/certs.ts";

/** A deadline that never fires; every conn it saw is closed at the end. */
function tracker(): ConnTracker & Disposable {
  const conns: Deno.Conn[] = [];
  return {
    signal: new AbortController().signal,
    track: (conn) => void conns.push(conn),
    [Symbol.dispose]: () => conns.forEach(closeQuietly),
  };
}

/** A TLS server for localhost and relay.invalid that completes handshakes until closed. */
function tlsServer(cert: string, key: string) {
  const listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key });
  const loop = (async () => {
    for await (const conn of listener) {
      await conn.handshake().catch(() => {});
      conn.close();
    }
  })().catch(() => {});
  return {
    port: listener.addr.port,
    async [Symbol.asyncDispose]() {
      listener.close();
      await loop;
    },
  };
}

const seeded = (name: string) => {
  const cache = new DnsCache();
  cache.set(name, "127.0.0.1");
  return cache;
};

Deno.test({
  name: "transport: by cached address, TLS verifies the certificate for the URL's name",
  ignore: !opensslAvailable,
  async fn() {
    await using certs = await makeTestCerts({ extraDnsNames: ["relay.invalid"] });
    await using server = tlsServer(certs.cert, certs.key);
    using deadline = tracker();
    const t = await openTransport(new URL(`wss://relay.invalid:${server.port}/`), deadline, {
      caCerts: [certs.ca],
      proxy: "none",
      dnsCache: seeded("relay.invalid"),
    });
    assert.equal(t.remoteAddr.hostname, "127.0.0.1");
  },
});

Deno.test({
  name: "transport: by cached address, a name the certificate does not hold still fails",
  ignore: !opensslAvailable,
  async fn() {
    await using certs = await makeTestCerts({ extraDnsNames: ["relay.invalid"] });
    await using server = tlsServer(certs.cert, certs.key);
    using deadline = tracker();
    const err = await openTransport(new URL(`wss://other.invalid:${server.port}/`), deadline, {
      caCerts: [certs.ca],
      proxy: "none",
      dnsCache: seeded("other.invalid"),
    }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof WsError, `expected WsError, got ${err}`);
    assert.equal(err.code, "connect_failed");
    assert.match(err.message, /TLS .* failed.*(NotValidForName|not valid for name|certificate)/i);
  },
});

Deno.test("transport: by cached address, the ClientHello names the host (SNI)", async () => {
  using raw = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const hello = (async () => {
    using conn = await raw.accept();
    const buf = new Uint8Array(4096);
    const n = await conn.read(buf);
    return new TextDecoder("latin1").decode(buf.subarray(0, n ?? 0));
  })();
  using deadline = tracker();
  await assert.rejects(
    openTransport(new URL(`wss://sni-check.invalid:${raw.addr.port}/`), deadline, {
      proxy: "none",
      dnsCache: seeded("sni-check.invalid"),
    }),
    WsError,
  );
  assert.ok((await hello).includes("sni-check.invalid"), "SNI missing from the ClientHello");
});
