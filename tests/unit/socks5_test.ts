import assert from "node:assert/strict";
import {
  encodeReply,
  readSocks5Request,
  replyCodeFor,
  Socks5HandshakeError,
} from "../../lib/sender/socks5.ts";
import { EnvelopeExchangeError, EnvelopeRejected } from "../../lib/sender/open_tunnel.ts";
import { RelayDialError } from "../../lib/relay/dial_error.ts";
import type { ByteStream } from "../../lib/tunnel/bridge.ts";

/**
 * A scripted client: `input` is delivered in reads of at most `chunk` bytes, then EOF (or, with
 * `hang`, a read that only ends when the stream is closed). Writes are recorded.
 */
function scripted(input: number[], opts: { chunk?: number; hang?: boolean } = {}) {
  let pos = 0;
  const writes: number[][] = [];
  let closeHang: (() => void) | undefined;
  const stream: ByteStream & { writes: number[][]; consumed(): number } = {
    writes,
    consumed: () => pos,
    read(p) {
      if (pos >= input.length) {
        if (!opts.hang) return Promise.resolve(null);
        return new Promise((resolve) => closeHang = () => resolve(null));
      }
      const n = Math.min(p.length, opts.chunk ?? 1, input.length - pos);
      p.set(input.slice(pos, pos + n));
      pos += n;
      return Promise.resolve(n);
    },
    write(p) {
      writes.push([...p]);
      return Promise.resolve(p.length);
    },
    closeWrite: () => Promise.resolve(),
    close: () => closeHang?.(),
  };
  return stream;
}

const GREETING = [5, 1, 0];
const FAIL = (rep: number) => [5, rep, 0, 1, 0, 0, 0, 0, 0, 0];
const ascii = (s: string) => [...new TextEncoder().encode(s)];

Deno.test("socks5: IPv4 CONNECT, byte by byte", async () => {
  const io = scripted([...GREETING, 5, 1, 0, 1, 10, 0, 0, 5, 0, 22]);
  assert.deepEqual(await readSocks5Request(io), {
    host: "10.0.0.5",
    port: 22,
    target: "10.0.0.5:22",
  });
  assert.deepEqual(io.writes, [[5, 0]]);
});

Deno.test("socks5: domain CONNECT, several methods offered, one big read", async () => {
  const io = scripted([5, 3, 2, 1, 0, 5, 1, 0, 3, 11, ...ascii("example.com"), 1, 187], {
    chunk: 1000,
  });
  assert.deepEqual(await readSocks5Request(io), {
    host: "example.com",
    port: 443,
    target: "example.com:443",
  });
  assert.deepEqual(io.writes, [[5, 0]]);
});

Deno.test("socks5: IPv6 is bracketed; IPv4-mapped IPv6 prints as IPv4", async () => {
  const v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
  let io = scripted([...GREETING, 5, 1, 0, 4, ...v6, 0, 22], { chunk: 7 });
  assert.equal((await readSocks5Request(io)).target, "[2001:db8::1]:22");
  const mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 1, 2, 3, 4];
  io = scripted([...GREETING, 5, 1, 0, 4, ...mapped, 0, 80]);
  assert.equal((await readSocks5Request(io)).target, "1.2.3.4:80");
  // A domain that is an IPv6 literal is joined like Go's JoinHostPort.
  io = scripted([...GREETING, 5, 1, 0, 3, 3, ...ascii("::1"), 0, 22]);
  assert.equal((await readSocks5Request(io)).target, "[::1]:22");
});

Deno.test("socks5: reads exactly the handshake, leaving early data for the tunnel", async () => {
  const io = scripted([...GREETING, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80, ...ascii("GET /")], {
    chunk: 1000,
  });
  await readSocks5Request(io);
  assert.equal(io.consumed(), 13);
});

Deno.test("socks5: every failure path writes exactly one reply", async () => {
  const cases: [string, number[], number[][], RegExp][] = [
    ["no-auth not offered", [5, 1, 2], [[5, 0xff]], /no acceptable authentication method/],
    ["SOCKS4 greeting", [4, 1, 0, 80, 127, 0, 0, 1, 0], [[5, 0xff]], /unsupported SOCKS version 4/],
    ["garbage", ascii("GET / HTTP/1.1\r\n\r\n"), [[5, 0xff]], /unsupported SOCKS version 71/],
    ["zero methods", [5, 0], [[5, 0xff]], /no authentication methods offered/],
    [
      "bad request version",
      [...GREETING, 4, 1, 0, 1, 1, 2, 3, 4, 0, 80],
      [[5, 0], FAIL(1)],
      /version 4 in request/,
    ],
    [
      "BIND",
      [...GREETING, 5, 2, 0, 1, 1, 2, 3, 4, 0, 80],
      [[5, 0], FAIL(7)],
      /unsupported command 2/,
    ],
    ["UDP ASSOCIATE", [...GREETING, 5, 3, 0, 1, 1, 2, 3, 4, 0, 80], [[5, 0], FAIL(7)], /command 3/],
    [
      "address type 2",
      [...GREETING, 5, 1, 0, 2, 1, 2, 3, 4, 0, 80],
      [[5, 0], FAIL(8)],
      /address type 2/,
    ],
    ["empty domain", [...GREETING, 5, 1, 0, 3, 0, 0, 80], [[5, 0], FAIL(1)], /empty domain/],
  ];
  for (const [name, input, writes, message] of cases) {
    const io = scripted(input);
    await assert.rejects(readSocks5Request(io), (err: Error) => {
      assert.ok(err instanceof Socks5HandshakeError, name);
      assert.match(err.message, message, name);
      return true;
    });
    assert.deepEqual(io.writes, writes, name);
  }
});

Deno.test("socks5: EOF in the middle of the handshake sends nothing more", async () => {
  for (const input of [[], [5], [5, 1], [...GREETING, 5, 1, 0, 1, 10, 0]]) {
    const io = scripted(input);
    await assert.rejects(readSocks5Request(io), /client closed the connection during handshake/);
    assert.deepEqual(io.writes, input.length >= 3 ? [[5, 0]] : []);
  }
});

Deno.test("socks5: the handshake deadline gets a failure reply for the current stage", async () => {
  let io = scripted([5, 1], { hang: true });
  await assert.rejects(readSocks5Request(io, { timeoutMs: 10 }), /handshake timed out/);
  io.close();
  assert.deepEqual(io.writes, [[5, 0xff]]);
  io = scripted([...GREETING, 5, 1], { hang: true });
  await assert.rejects(readSocks5Request(io, { timeoutMs: 10 }), /handshake timed out/);
  io.close();
  assert.deepEqual(io.writes, [[5, 0], FAIL(1)]);
});

Deno.test("socks5: reply encoding", () => {
  assert.deepEqual(
    [...encodeReply(0, { hostname: "127.0.0.1", port: 1080 })],
    [5, 0, 0, 1, 127, 0, 0, 1, 0x04, 0x38],
  );
  assert.deepEqual(
    [...encodeReply(0, { hostname: "::1", port: 443 })],
    [5, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x01, 0xbb],
  );
  assert.deepEqual([...encodeReply(5)], FAIL(5));
  // A failure never carries the bind address.
  assert.deepEqual([...encodeReply(1, { hostname: "127.0.0.1", port: 1 })], FAIL(1));
});

Deno.test("socks5: reply codes for tunnel failures", () => {
  const rejected = (code: string) => replyCodeFor(new EnvelopeRejected(code, "x"));
  assert.equal(rejected("not_allowed"), 0x02);
  assert.equal(rejected("connection_refused"), 0x05);
  assert.equal(rejected("network_unreachable"), 0x03);
  for (const c of ["host_unreachable", "timeout", "dns_not_found", "dns_timeout", "", "new_code"]) {
    assert.equal(rejected(c), 0x04, c);
  }
  assert.equal(replyCodeFor(new EnvelopeExchangeError("read response: closed")), 0x04);
  assert.equal(replyCodeFor(new RelayDialError("relay_failed", "no listener")), 0x01);
  assert.equal(replyCodeFor(new RelayDialError("auth_failed", "401")), 0x01);
  assert.equal(replyCodeFor(new Error("???")), 0x01);
});
