/** A forwarded request carries exactly its own body: nothing pipelined after it reaches the target. */
import assert from "node:assert/strict";
import { BodyFramer, bodyFraming, ProxyClientStream } from "../../lib/sender/http_proxy_client.ts";
import { HttpProxyError } from "../../lib/sender/http_proxy_reply.ts";
import type { ByteStream } from "../../lib/tunnel/bridge.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

const headers = (...fields: [string, string][]) => {
  const h = new Headers();
  for (const [n, v] of fields) h.append(n, v);
  return h;
};

Deno.test("http-proxy body: framing from the fields; ambiguous framing is a 400", () => {
  assert.deepEqual(bodyFraming(headers()), { kind: "length", length: 0 });
  assert.deepEqual(bodyFraming(headers(["Content-Length", "12"])), { kind: "length", length: 12 });
  assert.deepEqual(bodyFraming(headers(["Transfer-Encoding", "Chunked"])), { kind: "chunked" });
  const bad: [string, string][][] = [
    [["Transfer-Encoding", "chunked"], ["Content-Length", "3"]],
    [["Content-Length", "3"], ["Content-Length", "3"]],
    [["Content-Length", "3"], ["Content-Length", "4"]],
    [["Content-Length", "3, 4"]],
    [["Content-Length", "-1"]],
    [["Content-Length", "0x10"]],
    [["Transfer-Encoding", "gzip, chunked"]],
    [["Transfer-Encoding", "chunked"], ["Transfer-Encoding", "chunked"]],
    [["Transfer-Encoding", "identity"]],
  ];
  for (const fields of bad) {
    assert.throws(
      () => bodyFraming(headers(...fields)),
      (err) => err instanceof HttpProxyError && err.status === 400,
      JSON.stringify(fields),
    );
  }
});

Deno.test("http-proxy body: chunked framing ends after the last chunk and trailers", () => {
  const body = "4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\n";
  const after = "GET http://evil/ HTTP/1.1\r\n\r\n";
  const all = enc.encode(body + after);
  // Fed one byte at a time and all at once, the end is found at the same place.
  const whole = new BodyFramer({ kind: "chunked" });
  assert.equal(whole.take(all), body.length);
  assert.ok(whole.done);
  const bytewise = new BodyFramer({ kind: "chunked" });
  let taken = 0;
  for (let i = 0; i < all.length && !bytewise.done; i++) {
    taken += bytewise.take(all.subarray(i, i + 1));
  }
  assert.equal(taken, body.length);
  const empty = new BodyFramer({ kind: "chunked" });
  assert.equal(empty.take(enc.encode("0\r\n\r\nrest")), 5);
  for (const bad of ["x\r\n", "\r\n", "4\r\nWikiXX", "4\nWiki", "12345678901234\r\n"]) {
    assert.throws(() => new BodyFramer({ kind: "chunked" }).take(enc.encode(bad)), HttpProxyError);
  }
});

/** A socket that hands out `chunks`, then hangs (a client keeping its connection open). */
function client(chunks: string[]): ByteStream & { reads: number } {
  const queue = chunks.map((c) => enc.encode(c));
  const conn = {
    reads: 0,
    read(p: Uint8Array): Promise<number | null> {
      conn.reads++;
      const next = queue.shift();
      if (!next) return new Promise<never>(() => {});
      p.set(next);
      return Promise.resolve(next.length);
    },
    write: (p: Uint8Array) => Promise.resolve(p.length),
    closeWrite: () => Promise.resolve(),
    close: () => {},
  };
  return conn;
}

/** Everything the stream passes on before the response's end (closeWrite) settles it. */
async function forwarded(s: ProxyClientStream, reads: number): Promise<string> {
  let out = "";
  const buf = new Uint8Array(1024);
  for (let i = 0; i < reads; i++) {
    const n = await s.read(buf);
    if (n === null) break;
    out += dec.decode(buf.subarray(0, n));
  }
  return out;
}

Deno.test("http-proxy stream: a pipelined request after the body is never passed on", async () => {
  const second = "GET http://other/ HTTP/1.1\r\nProxy-Authorization: Basic c2VjcmV0\r\n\r\n";
  // Content-Length: the body's end and the next request arrive in one read.
  const conn = client(["lo" + second]);
  const s = new ProxyClientStream(conn, enc.encode("HEAD\r\n\r\n"), {
    endWithResponse: true,
    body: { framing: { kind: "length", length: 5 }, buffered: enc.encode("hel") },
  });
  assert.equal(await forwarded(s, 2), "HEAD\r\n\r\nhello");
  const pending = s.read(new Uint8Array(64));
  assert.equal(conn.reads, 1, "the client is not read after its body");
  await s.closeWrite();
  assert.equal(await pending, null);

  // Chunked, with the next request already in the bytes read with the head.
  const chunked = client([]);
  const c = new ProxyClientStream(chunked, enc.encode("H\r\n\r\n"), {
    endWithResponse: true,
    body: { framing: { kind: "chunked" }, buffered: enc.encode("3\r\nabc\r\n0\r\n\r\n" + second) },
  });
  assert.equal(await forwarded(c, 1), "H\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
  const waiting = c.read(new Uint8Array(64));
  assert.equal(chunked.reads, 0);
  await c.closeWrite();
  assert.equal(await waiting, null);

  // No body at all (a GET): only the head.
  const get = client([second]);
  const g = new ProxyClientStream(get, enc.encode("G\r\n\r\n"), {
    endWithResponse: true,
    body: { framing: { kind: "length", length: 0 }, buffered: enc.encode(second) },
  });
  assert.equal(await forwarded(g, 1), "G\r\n\r\n");
  const idle = g.read(new Uint8Array(64));
  assert.equal(get.reads, 0);
  await g.closeWrite();
  assert.equal(await idle, null);
});
