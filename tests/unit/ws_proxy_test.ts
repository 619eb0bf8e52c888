// lib/ws/proxy.ts: ws:// and wss:// through an HTTP CONNECT proxy taken from the environment.
import assert from "node:assert/strict";
import { connectWebSocket } from "../../lib/ws/client.ts";
import { makeTestCerts } from "../helpers/certs.ts";
import { echoServer, RawPeer, rejectsWith, tlsEchoServer } from "../helpers/ws_peers.ts";

/** A tiny HTTP CONNECT proxy that sends every tunnel to 127.0.0.1 (so fake names work). */
function connectProxy(opts: { refuse?: boolean } = {}) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const requests: string[] = [];
  const conns = new Set<Deno.Conn>();
  const tasks: Promise<void>[] = [];
  const pipe = async (from: Deno.Conn, to: Deno.Conn) => {
    const buf = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await from.read(buf);
        if (n === null) break;
        let off = 0;
        while (off < n) off += await to.write(buf.subarray(off, n));
      }
      await to.closeWrite();
    } catch {
      // One side went away; the other pipe notices on its own.
    }
  };
  const serve = async (client: Deno.Conn) => {
    conns.add(client);
    const peer = new RawPeer(client);
    const head = await peer.readHead();
    requests.push(head);
    if (opts.refuse) {
      await peer.write("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    const port = Number(/^CONNECT [^ ]+:(\d+) /.exec(head)?.[1]);
    const upstream = await Deno.connect({ hostname: "127.0.0.1", port });
    conns.add(upstream);
    await peer.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    await Promise.all([pipe(client, upstream), pipe(upstream, client)]);
  };
  const accepting = (async () => {
    for await (const c of listener) tasks.push(serve(c).catch(() => {}));
  })();
  return {
    url: `http://127.0.0.1:${listener.addr.port}`,
    requests,
    async close() {
      listener.close();
      await accepting;
      await Promise.all(tasks);
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // Already closed.
        }
      }
    },
  };
}

async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const names = ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"];
  const saved = new Map(names.map((n) => [n, Deno.env.get(n)]));
  for (const n of names) Deno.env.delete(n);
  for (const [k, v] of Object.entries(vars)) Deno.env.set(k, v);
  try {
    return await fn();
  } finally {
    for (const [n, v] of saved) v === undefined ? Deno.env.delete(n) : Deno.env.set(n, v);
  }
}

Deno.test("ws:// and wss:// through an HTTP CONNECT proxy from the environment", async () => {
  await using certs = await makeTestCerts({ extraDnsNames: ["ws.test"] });
  const tls = tlsEchoServer(certs);
  const plain = echoServer();
  const proxy = connectProxy();
  try {
    // The environment is the whole process's, and `deno test --parallel` runs other files in it:
    // NO_PROXY keeps their loopback connections (Deno's own WebSocket honours these too) off it.
    await withEnv({
      HTTP_PROXY: proxy.url,
      HTTPS_PROXY: `http://user:pa%3Ass@${proxy.url.slice(7)}`,
      NO_PROXY: "127.0.0.1,localhost",
    }, async () => {
      // ws.test does not resolve: only the proxy can have carried these.
      const ws = await connectWebSocket(`ws://ws.test:${plain.port}/p?sb-hc-token=x`);
      await ws.send("via proxy");
      assert.deepEqual(await ws.receive(), { type: "text", data: "via proxy" });
      await ws.close();
      const wss = await connectWebSocket(`wss://ws.test:${tls.port}/s`, { caCerts: [certs.ca] });
      await wss.send("via proxy, encrypted");
      assert.deepEqual(await wss.receive(), { type: "text", data: "via proxy, encrypted" });
      await wss.close();
      await rejectsWith(
        connectWebSocket(`ws://ws.test:${plain.port}/`, { proxy: "none", timeoutMs: 5000 }),
        "connect_failed",
      );
    });
    assert.equal(proxy.requests.length, 2);
    assert.equal(
      proxy.requests[0],
      `CONNECT ws.test:${plain.port} HTTP/1.1\r\nHost: ws.test:${plain.port}`,
    );
    assert.equal(
      proxy.requests[1],
      `CONNECT ws.test:${tls.port} HTTP/1.1\r\nHost: ws.test:${tls.port}\r\n` +
        `Proxy-Authorization: Basic ${btoa("user:pa:ss")}`,
    );
    await withEnv(
      { HTTP_PROXY: proxy.url, NO_PROXY: "example.org,.test,127.0.0.1,localhost" },
      async () => {
        await rejectsWith(connectWebSocket(`ws://ws.test:${plain.port}/`), "connect_failed");
      },
    );
    assert.equal(proxy.requests.length, 2, "NO_PROXY bypassed the proxy");
  } finally {
    await proxy.close();
    await plain.close();
    await tls.server.close();
  }
});

Deno.test("a proxy refusing CONNECT is connect_failed with its status", async () => {
  const proxy = connectProxy({ refuse: true });
  try {
    await withEnv({ HTTP_PROXY: proxy.url, NO_PROXY: "127.0.0.1,localhost" }, async () => {
      const err = await rejectsWith(connectWebSocket("ws://ws.test:1/"), "connect_failed");
      assert.match(err.message, /407 Proxy Authentication Required/);
    });
  } finally {
    await proxy.close();
  }
});

Deno.test("a proxy that cannot be reached is named in the error", async () => {
  const dead = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = dead.addr;
  dead.close();
  await withEnv(
    { HTTP_PROXY: `http://127.0.0.1:${port}`, NO_PROXY: "127.0.0.1,localhost" },
    async () => {
      const err = await rejectsWith(connectWebSocket("ws://ws.test:1/"), "connect_failed");
      assert.match(err.message, new RegExp(`through proxy 127\\.0\\.0\\.1:${port}: `));
    },
  );
});
