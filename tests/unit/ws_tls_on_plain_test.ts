// A wss:// client against a plain server: the server answers the ClientHello at once, the client
// says the relay does not speak TLS (lib/ws/server.ts, lib/ws/transport.ts).
import assert from "node:assert/strict";
import { connectWebSocket } from "../../lib/ws/client.ts";
import { WsError } from "../../lib/ws/errors.ts";
import { serveHttp } from "../../lib/ws/server.ts";
import { tlsFailure } from "../../lib/ws/transport.ts";
import { withDeadline } from "../helpers/proc.ts";
import { RawPeer } from "../helpers/ws_peers.ts";

function plainServer() {
  const seen: Deno.NetAddr[] = [];
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = serveHttp({
    listener,
    handler: async (req) => {
      const ws = await req.upgrade();
      await ws.close();
    },
    onTlsHandshake: (remote) => seen.push(remote),
  });
  return { server, seen, port: server.addr.port };
}

Deno.test("wss:// against a plain server fails at once, saying the relay does not speak TLS", async () => {
  const { server, seen, port } = plainServer();
  try {
    const started = performance.now();
    const err = await withDeadline(
      connectWebSocket(`wss://127.0.0.1:${port}/$hc/h?sb-hc-token=secret`, {
        proxy: "none",
        timeoutMs: 30_000,
      }).catch((e) => e),
      5_000,
      "wss connect",
    );
    assert.ok(performance.now() - started < 1_000, "answered within a second");
    assert.ok(err instanceof WsError);
    assert.equal(err.code, "connect_failed");
    assert.equal(
      err.message,
      "TLS to wss://127.0.0.1:" + port + "/$hc/h failed: the relay does not speak TLS (it " +
        "answered in plain text): use ws:// instead of wss://, or serve TLS (relay-server " +
        "--tls-cert/--tls-key or --tls-self-signed)",
    );
    assert.equal(seen.length, 1);
    assert.equal(seen[0].hostname, "127.0.0.1");
    // The same server still speaks ws:// to everyone else.
    const ws = await connectWebSocket(`ws://127.0.0.1:${port}/x`, { proxy: "none" });
    await ws.close();
  } finally {
    await server.close();
  }
});

Deno.test("a plain server answers a ClientHello with a plain-text 400, nothing else with it", async () => {
  const { server, seen, port } = plainServer();
  try {
    // A TLS 1.0 record header of a ClientHello, then bytes: never an HTTP request.
    const hello = new Uint8Array([0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0, 0, 1, 0]);
    const peer = await RawPeer.connect(port);
    try {
      await peer.write(hello);
      const answer = await withDeadline(peer.readAll(), 3_000, "answer");
      assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/);
      assert.match(answer, /\r\n\r\nthis server speaks plain HTTP and ws:\/\/, not TLS/);
    } finally {
      peer.close();
    }
    // A request whose first byte arrives alone is still read as HTTP.
    const slow = await RawPeer.connect(port);
    try {
      await slow.write("G");
      await slow.write("ET /x HTTP/1.1\r\nHost: h\r\n\r\n");
      const answer = await withDeadline(slow.readAll(), 3_000, "answer");
      assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/);
      assert.doesNotMatch(answer, /not TLS/);
    } finally {
      slow.close();
    }
    assert.equal(seen.length, 1);
  } finally {
    await server.close();
  }
});

Deno.test("tlsFailure: the two unclear rustls errors get their meaning, others stay", () => {
  assert.match(
    tlsFailure(new Error("received corrupt message of type InvalidContentType")),
    /^the relay does not speak TLS/,
  );
  assert.match(
    tlsFailure(new Error("invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))")),
    /^the relay serves a CA certificate as its own.*--tls-self-signed DIR makes both\)$/,
  );
  assert.equal(
    tlsFailure(new Error("invalid peer certificate: UnknownIssuer")),
    "invalid peer certificate: UnknownIssuer",
  );
});
