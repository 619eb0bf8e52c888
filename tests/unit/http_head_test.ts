// lib/net/http_head.ts: the one HTTP/1.1 head reader and writer (lib/ws and the ops endpoint).
import assert from "node:assert/strict";
import {
  encodeHead,
  findHeadEnd,
  hasToken,
  HttpParseError,
  parseRequestHead,
  parseResponseHead,
  STATUS_TEXT,
  statusLine,
  tokenList,
} from "../../lib/net/http_head.ts";

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("HTTP heads: parse and encode", () => {
  const req = parseRequestHead(
    text("GET /$hc/a?x=1 HTTP/1.1\r\nHost: h:1\r\nUpgrade: WebSocket\r\nX-A: 1\r\nx-a:  2 "),
  );
  assert.equal(req.method, "GET");
  assert.equal(req.target, "/$hc/a?x=1");
  assert.equal(req.headers.get("upgrade"), "WebSocket");
  assert.equal(req.headers.get("x-a"), "1, 2");
  assert.throws(() => parseRequestHead(text("GET / HTTP/2.0\r\nHost: h")), HttpParseError);
  assert.throws(() => parseRequestHead(text("GET  / HTTP/1.1")), HttpParseError);
  assert.throws(() => parseRequestHead(text("GET / HTTP/1.1\r\nBad Name: 1")), HttpParseError);
  assert.throws(() => parseRequestHead(text("GET / HTTP/1.1\r\nA: 1\r\n folded")), HttpParseError);
  assert.throws(() => parseRequestHead(text("GET / HTTP/1.1\r\nnocolon")), HttpParseError);

  const res = parseResponseHead(text("HTTP/1.1 404 Not Found Here\r\nContent-Length: 3"));
  assert.equal(res.status, 404);
  assert.equal(res.statusText, "Not Found Here");
  assert.equal(res.headers.get("content-length"), "3");
  assert.equal(parseResponseHead(text("HTTP/1.1 200")).statusText, "");

  assert.deepEqual(
    encodeHead("HTTP/1.1 101 Switching Protocols", [["Upgrade", "websocket"]]),
    text("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"),
  );
  assert.throws(() => encodeHead("GET / HTTP/1.1", [["X", "a\r\nInjected: 1"]]), TypeError);
  assert.throws(() => encodeHead("GET / HTTP/1.1", [["X Y", "a"]]), TypeError);
  assert.equal(hasToken("keep-alive, Upgrade", "upgrade"), true);
  assert.equal(hasToken("keep-alive", "upgrade"), false);
});

Deno.test("findHeadEnd: CRLF or bare LF, bounded by its range, rescans from `from`", () => {
  const crlf = text("GET / HTTP/1.1\r\nHost: h\r\n\r\nrest");
  assert.deepEqual(findHeadEnd(crlf, 0, crlf.length), { end: 23, next: 27 });
  const lf = text("GET / HTTP/1.1\nHost: h\n\nrest");
  assert.deepEqual(findHeadEnd(lf, 0, lf.length), { end: 22, next: 24 });
  const mixed = text("GET / HTTP/1.1\nHost: h\n\r\n");
  assert.deepEqual(findHeadEnd(mixed, 0, mixed.length), { end: 22, next: 25 });
  // Not complete within [start, to): bytes past `to` are never looked at.
  assert.equal(findHeadEnd(crlf, 0, 26), null);
  assert.equal(findHeadEnd(text("GET / HTTP/1.1\r\n"), 0, 16), null);
  // A head that starts inside a buffer; the CR before `start` is not part of it.
  const offset = text("xx\r\n\r\nGET / HTTP/1.1\r\n\r\n");
  assert.deepEqual(findHeadEnd(offset, 6, offset.length), { end: 20, next: 24 });
  assert.deepEqual(findHeadEnd(offset, 3, offset.length, 3), { end: 3, next: 6 });
  // Resuming a scan 3 bytes before the old end still finds a terminator split across reads.
  assert.deepEqual(findHeadEnd(crlf, 0, crlf.length, 22), { end: 23, next: 27 });
});

Deno.test("parse: bare LF lines and leading empty lines, as Go's net/http reads them", () => {
  const req = parseRequestHead(text("\r\n\nGET /x HTTP/1.0\nHost: h\r\nA: 1"));
  assert.equal(req.method, "GET");
  assert.equal(req.target, "/x");
  assert.equal(req.version, "HTTP/1.0");
  assert.equal(req.headers.get("host"), "h");
  assert.equal(req.headers.get("a"), "1");
  assert.throws(() => parseRequestHead(text("")), HttpParseError);
  assert.throws(() => parseRequestHead(text("GET / HTTP/1.1\r\nA: x\0y")), HttpParseError);
  const res = parseResponseHead(text("HTTP/1.1 101 Switching Protocols\nUpgrade: websocket"));
  assert.equal(res.status, 101);
  assert.equal(res.headers.get("upgrade"), "websocket");
  assert.throws(() => parseResponseHead(text("HTTP/1.1 20 OK")), HttpParseError);
  const err = (() => {
    try {
      parseRequestHead(text("nope"));
    } catch (e) {
      return e;
    }
  })();
  assert.ok(err instanceof HttpParseError);
  assert.equal(err.code, "bad_http_head");
});

Deno.test("statusLine, STATUS_TEXT and tokenList", () => {
  assert.equal(statusLine(101), "HTTP/1.1 101 Switching Protocols");
  assert.equal(statusLine(431), "HTTP/1.1 431 Request Header Fields Too Large");
  assert.equal(statusLine(404, "Gone Fishing"), "HTTP/1.1 404 Gone Fishing");
  assert.equal(statusLine(599), "HTTP/1.1 599");
  assert.equal(statusLine(400, ""), "HTTP/1.1 400");
  for (const status of [200, 400, 404, 405, 431, 500, 503]) assert.ok(STATUS_TEXT[status]);
  assert.deepEqual(tokenList(" a, ,b ,c"), ["a", "b", "c"]);
  assert.deepEqual(tokenList(null), []);
  assert.equal(hasToken(null, "close"), false);
});
