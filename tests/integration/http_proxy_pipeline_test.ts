/** A pipelined request behind a forwarded one never reaches the target, credentials and all. */
import assert from "node:assert/strict";
import { runHttpProxy } from "../../lib/sender/http_proxy.ts";
import { ProxyAuth } from "../../lib/sender/http_proxy_auth.ts";
import { parseAllowlist } from "../../lib/tunnel/allowlist.ts";
import { writeAll } from "../helpers/servers.ts";
import { dec, enc, startService, startStack, startTarget } from "../helpers/tunnel_stack.ts";

async function readAll(conn: Deno.Conn): Promise<string> {
  let out = "";
  const buf = new Uint8Array(8192);
  for (;;) {
    const n = await conn.read(buf).catch(() => null);
    if (n === null) return out;
    out += dec.decode(buf.subarray(0, n));
  }
}

Deno.test("http-proxy: only the first request and its body reach the target", async () => {
  let got = "";
  await using target = startTarget(async (conn) => {
    const buf = new Uint8Array(8192);
    // The whole first request, then the response: anything more would arrive before it.
    while (!got.includes("hello")) {
      const n = await conn.read(buf);
      if (n === null) break;
      got += dec.decode(buf.subarray(0, n));
    }
    await new Promise((r) => setTimeout(r, 100));
    const more = await Promise.race([
      conn.read(buf).then((n) => n === null ? "" : dec.decode(buf.subarray(0, n))),
      new Promise<string>((r) => setTimeout(() => r(""), 200)),
    ]);
    got += more;
    await writeAll(conn, enc.encode("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    conn.close();
  });
  await using stack = await startStack({ allowlist: parseAllowlist(["127.0.0.1:*"]) });
  await using proxy = await startService(runHttpProxy, {
    relay: stack.relay,
    auth: new ProxyAuth("u:secretpw", "x"),
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
  const cred = btoa("u:secretpw");
  await writeAll(
    conn,
    enc.encode(
      `POST http://127.0.0.1:${target.port}/first HTTP/1.1\r\nHost: x\r\n` +
        `Proxy-Authorization: Basic ${cred}\r\nContent-Length: 5\r\n\r\nhello` +
        `GET http://other.example/second HTTP/1.1\r\nHost: other.example\r\n` +
        `Proxy-Authorization: Basic ${cred}\r\n\r\n`,
    ),
  );
  const response = await readAll(conn);
  conn.close();
  assert.match(response, /^HTTP\/1\.1 200 OK\r\n[\s\S]*ok$/);
  assert.match(got, /^POST \/first HTTP\/1\.1\r\n[\s\S]*\r\n\r\nhello$/);
  assert.doesNotMatch(got, /second|Proxy-Authorization|secretpw|c2VjcmV0cHc/i);
});

Deno.test("http-proxy: Transfer-Encoding with Content-Length is refused with 400", async () => {
  await using target = startTarget((conn) => Promise.resolve(conn.close()));
  await using stack = await startStack({ allowlist: parseAllowlist(["127.0.0.1:*"]) });
  await using proxy = await startService(runHttpProxy, { relay: stack.relay });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
  await writeAll(
    conn,
    enc.encode(
      `POST http://127.0.0.1:${target.port}/ HTTP/1.1\r\nHost: x\r\n` +
        `Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n`,
    ),
  );
  const response = await readAll(conn);
  conn.close();
  assert.match(response, /^HTTP\/1\.1 400 /);
});
