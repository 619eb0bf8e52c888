// Frame parser/writer, handshake keys and proxy rules of lib/ws, byte for byte, no sockets.
import assert from "node:assert/strict";
import {
  applyMask,
  encodeClosePayload,
  encodeFrame,
  encodeFrameHeader,
  FrameError,
  frameHeaderSize,
  newFrameHeader,
  OP_BINARY,
  OP_CONTINUATION,
  OP_PING,
  OP_PONG,
  OP_TEXT,
  parseClosePayload,
  parseFrameHeader,
} from "../../lib/ws/frame.ts";
import { acceptKey, isValidKey } from "../../lib/ws/keys.ts";
import { redactUrl } from "../../lib/ws/url.ts";
import { noProxyMatches, parseProxyUrl, proxyForUrl } from "../../lib/ws/proxy.ts";

const text = (s: string) => new TextEncoder().encode(s);
const bytes = (...b: number[]) => new Uint8Array(b);
const RFC_MASK = bytes(0x37, 0xfa, 0x21, 0x3d);

function parse(buf: Uint8Array, expectMasked: boolean) {
  const h = newFrameHeader();
  const ok = parseFrameHeader(buf, 0, buf.length, expectMasked, h);
  return ok ? h : null;
}

function parseError(buf: Uint8Array, expectMasked: boolean): number {
  try {
    parse(buf, expectMasked);
  } catch (err) {
    assert.ok(err instanceof FrameError);
    return err.closeCode;
  }
  assert.fail("expected a FrameError");
}

Deno.test("encodeFrame: RFC 6455 §5.7 examples", () => {
  assert.deepEqual(
    encodeFrame(OP_TEXT, text("Hello"), null),
    bytes(0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f),
  );
  assert.deepEqual(
    encodeFrame(OP_TEXT, text("Hello"), RFC_MASK),
    bytes(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58),
  );
  assert.deepEqual(
    encodeFrame(OP_TEXT, text("Hel"), null, false),
    bytes(0x01, 0x03, 0x48, 0x65, 0x6c),
  );
  assert.deepEqual(encodeFrame(OP_CONTINUATION, text("lo"), null), bytes(0x80, 0x02, 0x6c, 0x6f));
  assert.deepEqual(
    encodeFrame(OP_PING, text("Hello"), null),
    bytes(0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f),
  );
  assert.deepEqual(
    encodeFrame(OP_PONG, text("Hello"), RFC_MASK),
    bytes(0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58),
  );
});

Deno.test("encodeFrame: 16- and 64-bit lengths", () => {
  const f256 = encodeFrame(OP_BINARY, new Uint8Array(256), null);
  assert.deepEqual(f256.subarray(0, 4), bytes(0x82, 0x7e, 0x01, 0x00));
  assert.equal(f256.length, 260);
  const f64k = encodeFrame(OP_BINARY, new Uint8Array(65536), null);
  assert.deepEqual(f64k.subarray(0, 10), bytes(0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0, 0));
  assert.equal(f64k.length, 65546);
  const f125 = encodeFrame(OP_BINARY, new Uint8Array(125), RFC_MASK);
  assert.deepEqual(f125.subarray(0, 6), bytes(0x82, 0xfd, 0x37, 0xfa, 0x21, 0x3d));
  const f65535 = encodeFrame(OP_BINARY, new Uint8Array(65535), null);
  assert.deepEqual(f65535.subarray(0, 4), bytes(0x82, 0x7e, 0xff, 0xff));
  assert.equal(frameHeaderSize(125, false), 2);
  assert.equal(frameHeaderSize(126, true), 8);
  assert.equal(frameHeaderSize(65536, true), 14);
  const big = new Uint8Array(10);
  assert.equal(encodeFrameHeader(big, 0, OP_BINARY, true, 2 ** 32 + 5, null), 10);
  assert.deepEqual(big, bytes(0x82, 0x7f, 0, 0, 0, 1, 0, 0, 0, 5));
});

Deno.test("encodeFrame never modifies the caller's payload", () => {
  const payload = text("do not touch me, I am the caller's buffer");
  const copy = payload.slice();
  const frame = encodeFrame(OP_BINARY, payload, RFC_MASK);
  assert.deepEqual(payload, copy);
  assert.notDeepEqual(frame.subarray(6), copy);
});

Deno.test("parseFrameHeader decodes what encodeFrame writes, and needs all header bytes", () => {
  for (const size of [0, 1, 125, 126, 65535, 65536, 70000]) {
    for (const mask of [null, RFC_MASK]) {
      const frame = encodeFrame(OP_BINARY, new Uint8Array(size), mask);
      const hlen = frameHeaderSize(size, mask !== null);
      for (let cut = 0; cut < hlen; cut++) {
        assert.equal(parse(frame.subarray(0, cut), mask !== null), null, `size ${size} cut ${cut}`);
      }
      const h = parse(frame, mask !== null);
      assert.ok(h);
      assert.equal(h.fin, true);
      assert.equal(h.opcode, OP_BINARY);
      assert.equal(h.masked, mask !== null);
      assert.equal(h.payloadLength, size);
      assert.equal(h.headerLength, hlen);
      if (mask) assert.deepEqual(h.mask, mask);
    }
  }
  const h = newFrameHeader();
  const buf = bytes(0xff, 0xff, 0x01, 0x03, 0x48, 0x65, 0x6c);
  assert.equal(parseFrameHeader(buf, 2, buf.length, false, h), true);
  assert.equal(h.fin, false);
  assert.equal(h.opcode, OP_TEXT);
  assert.equal(h.payloadLength, 3);
  assert.equal(h.headerLength, 2);
});

Deno.test("parseFrameHeader rejects what RFC 6455 forbids, with the right close code", () => {
  assert.equal(parseError(bytes(0xc1, 0x00), false), 1002, "RSV1");
  assert.equal(parseError(bytes(0xa1, 0x00), false), 1002, "RSV2");
  assert.equal(parseError(bytes(0x91, 0x00), false), 1002, "RSV3");
  assert.equal(parseError(bytes(0x83, 0x00), false), 1002, "opcode 3");
  assert.equal(parseError(bytes(0x8b, 0x00), false), 1002, "opcode 0xB");
  assert.equal(parseError(bytes(0x09, 0x00), false), 1002, "fragmented ping");
  assert.equal(parseError(bytes(0x89, 0x7e, 0x00, 0x7e), false), 1002, "ping of 126 bytes");
  assert.equal(parseError(bytes(0x82, 0x00), true), 1002, "unmasked client frame");
  assert.equal(parseError(bytes(0x82, 0x80, 1, 2, 3, 4), false), 1002, "masked server frame");
  assert.equal(parseError(bytes(0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0), false), 1002, "top bit");
  assert.equal(parseError(bytes(0x82, 0x7f, 0, 0x40, 0, 0, 0, 0, 0, 0), false), 1009, "2^54");
  assert.ok(parse(bytes(0x89, 0x7d), false), "ping of 125 bytes is fine");
});

Deno.test("applyMask matches the byte-wise definition at every alignment and phase", () => {
  const mask = bytes(0x12, 0x34, 0x56, 0x78);
  const backing = new Uint8Array(300);
  for (let i = 0; i < backing.length; i++) backing[i] = (i * 31 + 7) & 0xff;
  for (const offset of [0, 1, 2, 3]) {
    for (const length of [0, 1, 3, 15, 16, 17, 63, 64, 65, 257]) {
      for (const phase of [0, 1, 2, 3]) {
        const data = backing.slice().subarray(offset, offset + length);
        const expected = data.map((b, i) => b ^ mask[(phase + i) & 3]);
        const next = applyMask(data, mask, phase);
        assert.deepEqual(data, expected, `offset ${offset} length ${length} phase ${phase}`);
        assert.equal(next, (phase + length) & 3);
      }
    }
  }
  const whole = backing.slice(0, 200);
  const pieces = backing.slice(0, 200);
  applyMask(whole, mask);
  let phase = applyMask(pieces.subarray(0, 37), mask);
  phase = applyMask(pieces.subarray(37, 101), mask, phase);
  applyMask(pieces.subarray(101), mask, phase);
  assert.deepEqual(pieces, whole);
});

Deno.test("close payloads: exact bytes, 1005/1006 never on the wire, validation", () => {
  assert.deepEqual(encodeClosePayload(1000, "bye"), bytes(0x03, 0xe8, 0x62, 0x79, 0x65));
  assert.deepEqual(encodeClosePayload(4999, ""), bytes(0x13, 0x87));
  assert.deepEqual(encodeClosePayload(1005, "ignored"), bytes());
  assert.deepEqual(encodeClosePayload(1006, ""), bytes());
  for (const bad of [0, 999, 1004, 1015, 1016, 2999, 5000, 1000.5]) {
    assert.throws(() => encodeClosePayload(bad, ""), RangeError, String(bad));
  }
  assert.throws(() => encodeClosePayload(1000, "x".repeat(124)), RangeError);
  assert.equal(encodeClosePayload(1000, "é".repeat(61)).length, 124);

  assert.deepEqual(parseClosePayload(bytes()), { code: 1005, reason: "" });
  assert.deepEqual(parseClosePayload(bytes(0x0f, 0xa1, 0xc3, 0xa9)), { code: 4001, reason: "é" });
  assert.deepEqual(parseClosePayload(bytes(0x03, 0xf4)), { code: 1012, reason: "" });
  const code = (b: Uint8Array) => {
    try {
      parseClosePayload(b);
    } catch (err) {
      assert.ok(err instanceof FrameError);
      return err.closeCode;
    }
    return 0;
  };
  assert.equal(code(bytes(0x03)), 1002, "1-byte payload");
  assert.equal(code(bytes(0x03, 0xed)), 1002, "1005 on the wire");
  assert.equal(code(bytes(0x03, 0xee)), 1002, "1006 on the wire");
  assert.equal(code(bytes(0x03, 0xe7)), 1002, "999");
  assert.equal(code(bytes(0x13, 0x88)), 1002, "5000");
  assert.equal(code(bytes(0x03, 0xe8, 0xc3, 0x28)), 1007, "bad UTF-8 reason");
});

Deno.test("handshake keys and redacted URLs", async () => {
  assert.equal(await acceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  assert.equal(isValidKey("dGhlIHNhbXBsZSBub25jZQ=="), true);
  assert.equal(isValidKey("dGhlIHNhbXBsZSBub25jZR=="), false);
  assert.equal(isValidKey("short=="), false);
  assert.equal(isValidKey(null), false);
  assert.equal(
    redactUrl(new URL("wss://u:p@relay.example:444/$hc/x?sb-hc-token=secret")),
    "wss://relay.example:444/$hc/x",
  );
});

Deno.test("proxy selection follows HTTPS_PROXY/HTTP_PROXY/NO_PROXY like Go", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  const wss = new URL("wss://relay.example.com/$hc/x");
  const ws = new URL("ws://relay.example.com:8080/");
  assert.deepEqual(proxyForUrl(wss, env({ HTTPS_PROXY: "http://p:3128" })), {
    hostname: "p",
    port: 3128,
    authorization: null,
  });
  assert.equal(proxyForUrl(wss, env({ https_proxy: "p:3128" }))?.hostname, "p");
  assert.equal(proxyForUrl(wss, env({ HTTP_PROXY: "http://p:3128" })), null);
  assert.equal(proxyForUrl(ws, env({ HTTP_PROXY: "http://q" }))?.port, 80);
  assert.equal(proxyForUrl(ws, env({ HTTPS_PROXY: "http://q" })), null);
  assert.equal(proxyForUrl(wss, env({ HTTPS_PROXY: "p:1", NO_PROXY: "example.com" })), null);
  assert.equal(proxyForUrl(wss, env({ HTTPS_PROXY: "p:1", no_proxy: "*" })), null);
  assert.equal(proxyForUrl(new URL("wss://localhost:9/"), env({ HTTPS_PROXY: "p:1" })), null);
  assert.equal(proxyForUrl(new URL("ws://127.0.0.5/"), env({ HTTP_PROXY: "p:1" })), null);
  assert.equal(proxyForUrl(new URL("ws://[::1]:80/"), env({ HTTP_PROXY: "p:1" })), null);
  assert.equal(
    parseProxyUrl("http://us%40er:p%C3%A9ss@proxy:8080").authorization,
    "Basic " + btoa("us@er:p\xc3\xa9ss"),
  );
  assert.throws(() => parseProxyUrl("https://proxy:443"));
  assert.throws(() => parseProxyUrl("socks5://proxy:1080"));

  const cases: [string, string, number, boolean][] = [
    ["example.com", "example.com", 443, true],
    ["example.com", "a.example.com", 443, true],
    ["example.com", "badexample.com", 443, false],
    [".example.com", "example.com", 443, false],
    [".example.com", "a.b.example.com", 443, true],
    ["*.example.com", "a.example.com", 443, true],
    ["example.com:443", "example.com", 443, true],
    ["example.com:8443", "example.com", 443, false],
    [" other.org , EXAMPLE.com ", "x.example.com", 1, true],
    ["*", "anything", 1, true],
    ["10.0.0.0/8", "10.1.2.3", 443, true],
    ["10.0.0.0/8", "11.1.2.3", 443, false],
    ["192.168.1.7", "192.168.1.7", 80, true],
    ["[2001:db8::1]:443", "2001:db8::1", 443, true],
    ["2001:db8::1", "2001:db8::1", 443, true],
    ["", "example.com", 443, false],
  ];
  for (const [noProxy, host, port, want] of cases) {
    assert.equal(noProxyMatches(noProxy, host, port), want, `${noProxy} vs ${host}:${port}`);
  }
});
