/** relay-sender http-proxy in pieces: head reading, request rewriting, statuses, auth, the stream. */
import assert from "node:assert/strict";
import { Command } from "@commander-js/extra-typings";
import { addProxyAuthOptions, proxyAuthFlag } from "../../cmd/http_proxy.ts";
import { UsageError } from "../../lib/errors.ts";
import { parseRequestHead } from "../../lib/net/http_head.ts";
import { RelayDialError } from "../../lib/relay/dial_error.ts";
import { PROXY_AUTHENTICATE, ProxyAuth } from "../../lib/sender/http_proxy_auth.ts";
import { ProxyClientStream } from "../../lib/sender/http_proxy_client.ts";
import { readProxyHead } from "../../lib/sender/http_proxy_head.ts";
import {
  CONNECT_ESTABLISHED,
  errorResponse,
  HttpProxyError,
  openFailure,
} from "../../lib/sender/http_proxy_reply.ts";
import { interpretRequest, parseHttpUrl } from "../../lib/sender/http_proxy_request.ts";
import { EnvelopeExchangeError, EnvelopeRejected } from "../../lib/sender/open_tunnel.ts";
import type { ByteStream } from "../../lib/tunnel/bridge.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A reader that hands out `chunks` one per read, then EOF (or hangs when `hang`). */
function chunkReader(chunks: string[], o: { hang?: boolean } = {}) {
  const queue = chunks.map((c) => enc.encode(c));
  return {
    read(p: Uint8Array): Promise<number | null> {
      const next = queue.shift();
      if (!next) return o.hang ? new Promise<never>(() => {}) : Promise.resolve(null);
      assert.ok(next.length <= p.length, "test chunk larger than the read");
      p.set(next);
      return Promise.resolve(next.length);
    },
  };
}

async function refusal(p: Promise<unknown>): Promise<HttpProxyError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof HttpProxyError, String(err));
    return err;
  }
  assert.fail("expected an HttpProxyError");
}

const head = (text: string) => parseRequestHead(enc.encode(text));

Deno.test("http-proxy head: split across reads, bytes after the head are kept", async () => {
  const got = await readProxyHead(
    chunkReader(["CONNECT example.com:443 HT", "TP/1.1\r\nHost: example.com:443\r", "\n\r\nhello"]),
  );
  assert.ok(got);
  assert.equal(got.head.method, "CONNECT");
  assert.equal(got.head.target, "example.com:443");
  assert.equal(got.head.headers.get("host"), "example.com:443");
  assert.equal(dec.decode(got.rest), "hello");
});

Deno.test("http-proxy head: EOF first is null, inside the head 400, garbage 400", async () => {
  assert.equal(await readProxyHead(chunkReader([])), null);
  assert.equal(
    (await refusal(readProxyHead(chunkReader(["GET http://a/ HTTP/1.1\r\n"])))).status,
    400,
  );
  const bad = await refusal(readProxyHead(chunkReader(["\x16\x03\x01 hello\r\n\r\n"])));
  assert.equal(bad.status, 400);
  assert.equal(bad.code, "bad_request");
});

Deno.test("http-proxy head: over the limit is 431, a silent client 408 at the deadline", async () => {
  const big = "GET http://a/ HTTP/1.1\r\n" + "X-Pad: " + "a".repeat(3000) + "\r\n";
  const tooLarge = await refusal(readProxyHead(chunkReader([big, big, big]), { limit: 4096 }));
  assert.equal(tooLarge.status, 431);
  const slow = await refusal(
    readProxyHead(chunkReader(["GET http://a/ HTTP/1.1\r\n"], { hang: true }), { timeoutMs: 20 }),
  );
  assert.equal(slow.status, 408);
  assert.equal(slow.code, "head_timeout");
});

Deno.test("http-proxy request: CONNECT authority, IPv6 in brackets, bad ones 400", () => {
  assert.deepEqual(interpretRequest(head("CONNECT example.com:443 HTTP/1.1")), {
    kind: "connect",
    target: "example.com:443",
  });
  assert.deepEqual(interpretRequest(head("CONNECT [::1]:22 HTTP/1.1")), {
    kind: "connect",
    target: "[::1]:22",
  });
  for (const bad of ["example.com", "example.com:0", "::1:22", ":443", "a/b:1", "[zz]:1"]) {
    assert.throws(
      () => interpretRequest(head(`CONNECT ${bad} HTTP/1.1`)),
      (e) => e instanceof HttpProxyError && e.status === 400,
      bad,
    );
  }
});

Deno.test("http-proxy request: absolute http URLs, default port 80, as written", () => {
  assert.deepEqual(parseHttpUrl("http://example.com/a/../b?q=1#frag"), {
    target: "example.com:80",
    authority: "example.com",
    path: "/a/../b?q=1",
  });
  assert.deepEqual(parseHttpUrl("HTTP://Example.com:8080"), {
    target: "Example.com:8080",
    authority: "Example.com:8080",
    path: "",
  });
  assert.equal(parseHttpUrl("http://[::1]:81/x").target, "[::1]:81");
  assert.equal(parseHttpUrl("http://[::1]/x").target, "[::1]:80");
  assert.equal(parseHttpUrl("http://host:/x").target, "host:80");
});

Deno.test("http-proxy request: https, userinfo, bad ports are 400; origin form 405", () => {
  const status = (target: string) => {
    try {
      parseHttpUrl(target);
    } catch (err) {
      assert.ok(err instanceof HttpProxyError);
      return err;
    }
    assert.fail(`${target} parsed`);
  };
  assert.match(status("https://example.com/").message, /use CONNECT/);
  assert.equal(status("https://example.com/").status, 400);
  assert.equal(status("ftp://example.com/").status, 400);
  assert.equal(status("http://user:pw@example.com/").status, 400);
  assert.equal(status("http://example.com:99999/").status, 400);
  assert.equal(status("http:///path").status, 400);
  assert.equal(status("http://[zz]/").status, 400);
  assert.equal(status("http://a b/").status, 400);
  const origin = status("/index.html");
  assert.equal(origin.status, 405);
  assert.deepEqual(origin.headers, [["Allow", "CONNECT"]]);
  assert.equal(status("*").status, 405);
});

Deno.test("http-proxy request: forwarded in origin form, Host from the URL, hop-by-hop gone", () => {
  const req = interpretRequest(head(
    [
      "POST http://target.internal:8080/api?x=1 HTTP/1.1",
      "Host: wrong.example",
      "User-Agent: curl/8",
      "Proxy-Connection: keep-alive",
      "Proxy-Authorization: Basic dTpw",
      "Connection: keep-alive, X-Secret, Content-Length",
      "Keep-Alive: timeout=5",
      "X-Secret: 1",
      "TE: trailers",
      "Upgrade: h2c",
      "Content-Length: 3",
      "Transfer-Encoding: chunked",
    ].join("\r\n"),
  ));
  assert.equal(req.kind, "forward");
  assert.equal(req.target, "target.internal:8080");
  assert.ok(req.kind === "forward");
  assert.equal(
    dec.decode(req.head),
    [
      "POST /api?x=1 HTTP/1.1",
      "Host: target.internal:8080",
      "content-length: 3",
      "transfer-encoding: chunked",
      "user-agent: curl/8",
      "Connection: close",
      "",
      "",
    ].join("\r\n"),
  );
});

Deno.test("http-proxy request: empty path is / (OPTIONS: *), a bare query gets its /", () => {
  const line = (text: string) => {
    const req = interpretRequest(head(text));
    assert.ok(req.kind === "forward");
    return dec.decode(req.head).split("\r\n")[0];
  };
  assert.equal(line("GET http://a HTTP/1.0"), "GET / HTTP/1.0");
  assert.equal(line("OPTIONS http://a:81 HTTP/1.1"), "OPTIONS * HTTP/1.1");
  assert.equal(line("GET http://a?x HTTP/1.1"), "GET /?x HTTP/1.1");
});

Deno.test("http-proxy status: 403 not allowed (with or without a code), 502, 504, 503", () => {
  const cases: [unknown, number, string][] = [
    [new EnvelopeRejected("not_allowed", "target not allowed"), 403, "not_allowed"],
    [new EnvelopeRejected("", "target not allowed"), 403, "not_allowed"],
    [new EnvelopeRejected("connection_refused", "dial tcp: refused"), 502, "connection_refused"],
    [new EnvelopeRejected("host_unreachable", "no route"), 502, "host_unreachable"],
    [new EnvelopeRejected("network_unreachable", "no net"), 502, "network_unreachable"],
    [new EnvelopeRejected("dns_not_found", "no such host"), 502, "dns_not_found"],
    [new EnvelopeRejected("", "dial failed"), 502, "rejected"],
    [new EnvelopeRejected("timeout", "i/o timeout"), 504, "timeout"],
    [new EnvelopeRejected("dns_timeout", "resolver"), 504, "dns_timeout"],
    [
      new EnvelopeExchangeError("no reply", undefined, { code: "reply_timeout" }),
      504,
      "reply_timeout",
    ],
    [new EnvelopeExchangeError("read response: closed"), 502, "envelope_failed"],
    [new RelayDialError("dial_timeout", "relay dial: out of time"), 504, "dial_timeout"],
    [new RelayDialError("rejected", "relay said 404: no listener"), 502, "rejected"],
    [new Error("boom"), 502, "tunnel_failed"],
  ];
  for (const [err, status, code] of cases) {
    const got = openFailure(err, false);
    assert.equal(got.status, status, String(err));
    assert.equal(got.code, code, String(err));
  }
  assert.equal(openFailure(new EnvelopeRejected("not_allowed", "x"), true).status, 503);
});

Deno.test("http-proxy response: status line, text body with its length, Connection: close", () => {
  const text = dec.decode(errorResponse(
    new HttpProxyError(407, "auth_required", "proxy credentials required", [
      ["Proxy-Authenticate", PROXY_AUTHENTICATE],
    ]),
  ));
  const body = "auth_required: proxy credentials required\n";
  assert.equal(
    text,
    "HTTP/1.1 407 Proxy Authentication Required\r\n" +
      'Proxy-Authenticate: Basic realm="aztunnel"\r\n' +
      "Content-Type: text/plain; charset=utf-8\r\n" +
      `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
  );
  assert.match(
    dec.decode(errorResponse(openFailure(new EnvelopeRejected("timeout", "t"), false))),
    /^HTTP\/1\.1 504 Gateway Timeout\r\n/,
  );
  assert.equal(dec.decode(CONNECT_ESTABLISHED), "HTTP/1.1 200 Connection established\r\n\r\n");
});

Deno.test("http-proxy auth: the right Basic credentials pass, anything else is 407", () => {
  const auth = new ProxyAuth("alice:s3cr:et", "--proxy-auth");
  const basic = (s: string) => `Basic ${btoa(s)}`;
  assert.equal(auth.accepts(basic("alice:s3cr:et")), true);
  assert.equal(auth.accepts(`bAsIc  ${btoa("alice:s3cr:et")}`), true);
  for (const bad of [null, "", basic("alice:s3cr:eT"), basic("alice:s3cr:et "), basic("alice")]) {
    assert.equal(auth.accepts(bad), false, String(bad));
  }
  assert.equal(auth.accepts(`Bearer ${btoa("alice:s3cr:et")}`), false);
  assert.equal(auth.accepts("Basic !!!"), false);
  for (const header of [null, basic("mallory:x")]) {
    assert.throws(
      () => auth.check(header),
      (e) =>
        e instanceof HttpProxyError && e.status === 407 &&
        e.headers[0][1] === 'Basic realm="aztunnel"',
    );
  }
  auth.check(basic("alice:s3cr:et"));
  assert.equal(new ProxyAuth("bob:", "x").accepts(basic("bob:")), true);
  for (const bad of ["nocolon", ":pw", "a:b\nc"]) {
    assert.throws(() => new ProxyAuth(bad, "--proxy-auth"), UsageError);
  }
});

/** `relay-sender http-proxy`'s auth flags parsed from `argv` with `env`. */
async function authFrom(argv: string[], env: Record<string, string> = {}) {
  const saved = Object.keys(env).map((k) => [k, Deno.env.get(k)] as const);
  for (const [k, v] of Object.entries(env)) Deno.env.set(k, v);
  try {
    const cmd = addProxyAuthOptions(new Command()).exitOverride().parse(argv, { from: "user" });
    return await proxyAuthFlag(cmd.opts(), cmd);
  } finally {
    for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
  }
}

Deno.test("http-proxy flags: flag, env or file; the file's newline is dropped; flag beats env", async () => {
  const file = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(file, "carol:pw\n");
    const basic = (s: string) => `Basic ${btoa(s)}`;
    assert.equal(await authFrom([]), undefined);
    assert.ok((await authFrom(["--proxy-auth", "a:b"]))?.accepts(basic("a:b")));
    assert.ok((await authFrom([], { AZTUNNEL_PROXY_AUTH: "e:f" }))?.accepts(basic("e:f")));
    assert.ok((await authFrom(["--proxy-auth-file", file]))?.accepts(basic("carol:pw")));
    const fileOverEnv = await authFrom(["--proxy-auth-file", file], { AZTUNNEL_PROXY_AUTH: "e:f" });
    assert.ok(fileOverEnv?.accepts(basic("carol:pw")));
    await assert.rejects(
      authFrom(["--proxy-auth", "a:b", "--proxy-auth-file", file]),
      /mutually exclusive/,
    );
    await assert.rejects(authFrom(["--proxy-auth", "nocolon"]), UsageError);
    await assert.rejects(authFrom(["--proxy-auth-file", `${file}.missing`]), UsageError);
  } finally {
    await Deno.remove(file);
  }
});

/** A ByteStream over scripted reads that records writes and half-closes. */
function fakeConn() {
  const reads: ((v: number | null) => void)[] = [];
  let writeClosed = false;
  let closed = false;
  const conn: ByteStream = {
    read: () => new Promise((resolve) => reads.push(resolve)),
    write: (p) => Promise.resolve(p.length),
    closeWrite: () => {
      writeClosed = true;
      return Promise.resolve();
    },
    close: () => {
      closed = true;
      for (const r of reads.splice(0)) r(null);
    },
  };
  return { conn, reads, state: () => ({ writeClosed, closed }) };
}

Deno.test("http-proxy stream: the prefix first, in pieces, then the socket", async () => {
  const { conn, reads } = fakeConn();
  const s = new ProxyClientStream(conn, enc.encode("abcdef"), { endWithResponse: false });
  const buf = new Uint8Array(4);
  assert.equal(await s.read(buf), 4);
  assert.equal(dec.decode(buf), "abcd");
  assert.equal(await s.read(buf), 2);
  assert.equal(dec.decode(buf.subarray(0, 2)), "ef");
  const next = s.read(buf);
  assert.equal(reads.length, 1);
  reads[0](3);
  assert.equal(await next, 3);
  // CONNECT: the target's EOF only half-closes the client.
  await s.closeWrite();
  const after = s.read(buf);
  assert.equal(reads.length, 2);
  reads[1](null);
  assert.equal(await after, null);
});

Deno.test("http-proxy stream: a forwarded request's client side ends with the response", async () => {
  const { conn, reads, state } = fakeConn();
  const s = new ProxyClientStream(conn, new Uint8Array(0), { endWithResponse: true });
  const pending = s.read(new Uint8Array(8));
  assert.equal(reads.length, 1);
  await s.closeWrite();
  assert.equal(await pending, null);
  assert.equal(await s.read(new Uint8Array(8)), null);
  assert.equal(reads.length, 1, "no read after the end");
  assert.deepEqual(state(), { writeClosed: true, closed: false });
  s.close();
  assert.deepEqual(state(), { writeClosed: true, closed: true });
});
