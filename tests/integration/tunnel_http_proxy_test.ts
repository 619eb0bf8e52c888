/** relay-sender http-proxy through relay-server and the real listener: CONNECT, forwards, refusals. */
import assert from "node:assert/strict";
import { findHeadEnd } from "../../lib/net/http_head.ts";
import { type HttpProxyOptions, runHttpProxy } from "../../lib/sender/http_proxy.ts";
import { ProxyAuth } from "../../lib/sender/http_proxy_auth.ts";
import type { SenderRelayConfig } from "../../lib/sender/open_tunnel.ts";
import { parseAllowlist } from "../../lib/tunnel/allowlist.ts";
import { readAll, writeAll } from "../helpers/servers.ts";
import {
  dec,
  enc,
  hangingDial,
  startService,
  startStack,
  startTarget,
  upperEcho,
} from "../helpers/tunnel_stack.ts";

function startProxy(relay: SenderRelayConfig, extra: Partial<HttpProxyOptions> = {}) {
  return startService(runHttpProxy, { relay, ...extra });
}

/** Sends `request` on a new connection to the proxy; returns the socket. */
async function send(proxyPort: number, request: string): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxyPort });
  await writeAll(conn, enc.encode(request));
  return conn;
}

/** Reads up to and including the end of the response head; returns it and what followed. */
async function readHead(conn: Deno.Conn): Promise<{ head: string; rest: string }> {
  let data = new Uint8Array(0);
  const buf = new Uint8Array(4096);
  for (;;) {
    const end = findHeadEnd(data, 0, data.length);
    if (end) {
      return {
        head: dec.decode(data.subarray(0, end.next)),
        rest: dec.decode(data.subarray(end.next)),
      };
    }
    const n = await conn.read(buf);
    if (n === null) throw new Error(`EOF inside the head: ${dec.decode(data)}`);
    const next = new Uint8Array(data.length + n);
    next.set(data);
    next.set(buf.subarray(0, n), data.length);
    data = next;
  }
}

/** The whole exchange: request out, everything until the proxy closes. */
async function exchange(proxyPort: number, request: string): Promise<string> {
  const conn = await send(proxyPort, request);
  try {
    return dec.decode(await readAll(conn));
  } finally {
    conn.close();
  }
}

/**
 * An HTTP target that answers each request with what it received (head and the body that
 * Content-Length announced) and closes, as a server does after `Connection: close`.
 */
function startMirror() {
  return startTarget(async (conn) => {
    const { head, rest } = await readHead(conn);
    const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
    let body = rest;
    const buf = new Uint8Array(4096);
    while (enc.encode(body).length < length) {
      const n = await conn.read(buf);
      if (n === null) break;
      body += dec.decode(buf.subarray(0, n));
    }
    const echoed = enc.encode(head + body);
    await writeAll(
      conn,
      enc.encode(
        `HTTP/1.1 200 OK\r\nContent-Length: ${echoed.length}\r\nConnection: close\r\n\r\n`,
      ),
    );
    await writeAll(conn, echoed);
  });
}

Deno.test("http-proxy: CONNECT gets 200 after the listener's ok, then raw bytes with half-close", async () => {
  await using target = startTarget(upperEcho);
  await using stack = await startStack({ allowlist: parseAllowlist(["localhost:*"]) });
  await using proxy = await startProxy(stack.relay);
  await stack.logs.waitFor(/msg="http-proxy listening" side=sender bind=127\.0\.0\.1:\d+/);
  // Bytes sent right behind the head (an eager TLS ClientHello) reach the target first.
  const conn = await send(
    proxy.port,
    `CONNECT localhost:${target.port} HTTP/1.1\r\nHost: localhost:${target.port}\r\n\r\nearly `,
  );
  const { head, rest } = await readHead(conn);
  assert.equal(head, "HTTP/1.1 200 Connection established\r\n\r\n");
  await writeAll(conn, enc.encode("bytes"));
  await conn.closeWrite();
  assert.equal(rest + dec.decode(await readAll(conn)), "EARLY BYTES<end>");
  conn.close();
  await stack.logs.waitFor(
    new RegExp(`msg="connection requested" side=listener .*target=localhost:${target.port}`),
  );
});

Deno.test("http-proxy: an absolute URL is forwarded in origin form and the response relayed", async () => {
  await using mirror = startMirror();
  await using stack = await startStack({ allowlist: parseAllowlist(["127.0.0.1:*"]) });
  await using proxy = await startProxy(stack.relay);
  const response = await exchange(
    proxy.port,
    `POST http://127.0.0.1:${mirror.port}/submit?x=1 HTTP/1.1\r\nHost: elsewhere\r\n` +
      "Proxy-Connection: keep-alive\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n" +
      "Content-Length: 5\r\n\r\nhello",
  );
  const [head, echoed] = response.split(/\r\n\r\n(.*)$/s);
  assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
  assert.equal(
    echoed,
    `POST /submit?x=1 HTTP/1.1\r\nHost: 127.0.0.1:${mirror.port}\r\ncontent-length: 5\r\n` +
      "Connection: close\r\n\r\nhello",
  );
});

Deno.test("http-proxy: the connection closes after the response, even when the client keeps it", async () => {
  await using mirror = startMirror();
  await using stack = await startStack({});
  await using proxy = await startProxy(stack.relay);
  // The client neither half-closes nor closes: the tunnel still ends with the response.
  const conn = await send(proxy.port, `GET http://127.0.0.1:${mirror.port}/ HTTP/1.1\r\n\r\n`);
  assert.match(dec.decode(await readAll(conn)), /^HTTP\/1\.1 200 OK\r\n[^]*GET \/ HTTP\/1\.1\r\n/);
  await stack.logs.waitFor(/msg="bridge ended" side=sender .*cause=peer_close/);
  conn.close();
});

Deno.test("http-proxy: not allowed is 403, a refused target 502, a silent listener 504", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const refusedPort = closed.addr.port;
  closed.close();
  await using stack = await startStack({ allowlist: parseAllowlist(["127.0.0.1:*"]) });
  await using proxy = await startProxy(stack.relay);
  const forbidden = await exchange(proxy.port, "CONNECT forbidden.example:22 HTTP/1.1\r\n\r\n");
  assert.match(forbidden, /^HTTP\/1\.1 403 Forbidden\r\n/);
  assert.match(forbidden, /\r\n\r\nnot_allowed: target not allowed\n$/);
  const plain = await exchange(proxy.port, "GET http://forbidden.example/ HTTP/1.1\r\n\r\n");
  assert.match(plain, /^HTTP\/1\.1 403 Forbidden\r\n/);
  await stack.logs.waitFor(/msg="target not allowed" side=listener .*target=forbidden\.example:80/);

  const refused = await exchange(proxy.port, `CONNECT 127.0.0.1:${refusedPort} HTTP/1.1\r\n\r\n`);
  assert.match(refused, /^HTTP\/1\.1 502 Bad Gateway\r\n[^]*\r\n\r\nconnection_refused: /);
});

Deno.test("http-proxy: no answer to the envelope within the deadline is 504", async () => {
  await using stack = await startStack({ handler: { pingIntervalMs: 0, dial: hangingDial } });
  await using proxy = await startProxy({ ...stack.relay, replyTimeoutMs: 50 });
  const response = await exchange(proxy.port, "CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n");
  assert.match(response, /^HTTP\/1\.1 504 Gateway Timeout\r\n[^]*reply_timeout: no reply/);
});

Deno.test("http-proxy: bad requests are answered without a tunnel (400, 405, 408)", async () => {
  await using stack = await startStack({});
  await using proxy = await startProxy(stack.relay, { headTimeoutMs: 100 });
  const garbage = await exchange(proxy.port, "\x05\x01\x00hello\r\n\r\n");
  assert.match(garbage, /^HTTP\/1\.1 400 Bad Request\r\n/);
  const origin = await exchange(proxy.port, "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n");
  assert.match(origin, /^HTTP\/1\.1 405 Method Not Allowed\r\nAllow: CONNECT\r\n/);
  const slow = await exchange(proxy.port, "GET http://a/ HTTP/1.1\r\n");
  assert.match(slow, /^HTTP\/1\.1 408 Request Timeout\r\n/);
  assert.equal(stack.logs.count(/msg="connection requested"/), 0);
});

Deno.test("http-proxy: --proxy-auth answers 407 until the credentials are right", async () => {
  await using target = startTarget(upperEcho);
  await using stack = await startStack({});
  await using proxy = await startProxy(stack.relay, {
    auth: new ProxyAuth("user:pa:ss", "--proxy-auth"),
  });
  const connect = `CONNECT 127.0.0.1:${target.port} HTTP/1.1\r\n`;
  for (const extra of ["", `Proxy-Authorization: Basic ${btoa("user:wrong")}\r\n`]) {
    const denied = await exchange(proxy.port, `${connect}${extra}\r\n`);
    assert.match(
      denied,
      /^HTTP\/1\.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="aztunnel"\r\n/,
    );
  }
  assert.equal(stack.logs.count(/msg="connection requested"/), 0);
  const conn = await send(
    proxy.port,
    `${connect}Proxy-Authorization: Basic ${btoa("user:pa:ss")}\r\n\r\n`,
  );
  assert.equal((await readHead(conn)).head, "HTTP/1.1 200 Connection established\r\n\r\n");
  await writeAll(conn, enc.encode("ok"));
  await conn.closeWrite();
  assert.equal(dec.decode(await readAll(conn)), "OK<end>");
  conn.close();
});

Deno.test("http-proxy: a stop during the relay dial answers 503 at once", async () => {
  await using stack = await startStack({});
  await using proxy = await startProxy(
    { ...stack.relay, entity: "nobody-listens-here" },
    { drainTimeoutMs: 60_000 },
  );
  const conn = await send(proxy.port, "CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n");
  await stack.logs.waitFor(/msg="relay dial failed \(retrying\)" side=sender/);
  const stopped = proxy.stop();
  assert.match(dec.decode(await readAll(conn)), /^HTTP\/1\.1 503 Service Unavailable\r\n/);
  conn.close();
  await stopped;
  assert.equal(stack.logs.count(/msg="draining tunnels"/), 0);
});
