import assert from "node:assert/strict";
import { joinHostPort, parseHostPort, parsePort, splitHostPort } from "../../lib/net/host_port.ts";
import { isLoopback } from "../../lib/net/loopback.ts";
import { writeAll } from "../../lib/net/write_all.ts";

Deno.test("splitHostPort follows Go's net.SplitHostPort", () => {
  assert.deepEqual(splitHostPort("a:1"), { host: "a", port: "1" });
  assert.deepEqual(splitHostPort("[::1]:22"), { host: "::1", port: "22" });
  assert.deepEqual(splitHostPort(":80"), { host: "", port: "80" });
  assert.deepEqual(splitHostPort("::1:22"), null);
  assert.deepEqual(splitHostPort("a"), null);
  assert.deepEqual(splitHostPort("[a]b:1"), null);
  assert.deepEqual(splitHostPort("a]:1"), null);
});

Deno.test("parsePort is 1-65535 in at most five digits; parseHostPort allows 0 and keeps the host", () => {
  assert.deepEqual(parsePort("1"), 1);
  assert.deepEqual(parsePort("65535"), 65535);
  assert.deepEqual(parsePort("0"), null);
  assert.deepEqual(parsePort("65536"), null);
  assert.deepEqual(parsePort("+1"), null);
  assert.deepEqual(parsePort("000022"), null);
  assert.deepEqual(parseHostPort(" 127.0.0.1:0 "), { hostname: "127.0.0.1", port: 0 });
  assert.deepEqual(parseHostPort(":5432"), { hostname: "", port: 5432 });
  assert.deepEqual(parseHostPort("[::1]:65535"), { hostname: "::1", port: 65535 });
  assert.deepEqual(parseHostPort("h:65536"), null);
  assert.deepEqual(parseHostPort("h:x"), null);
  assert.deepEqual(parseHostPort("h"), null);
});

Deno.test("joinHostPort brackets IPv6", () => {
  assert.deepEqual(joinHostPort("::1", 22), "[::1]:22");
  assert.deepEqual(joinHostPort("h", "80"), "h:80");
});

Deno.test("isLoopback: localhost names, 127/8, ::1 and mapped 127/8 only", () => {
  for (
    const h of [
      "localhost",
      "LOCALHOST",
      "a.localhost",
      "127.0.0.1",
      "127.255.0.9",
      "::1",
      "[::1]",
      "::ffff:127.0.0.1",
    ]
  ) {
    assert.deepEqual(isLoopback(h), true, h);
  }
  for (
    const h of [
      "localhost.example",
      "128.0.0.1",
      "127.0.0.256",
      "::2",
      "::ffff:10.0.0.1",
      "0.0.0.0",
      "",
    ]
  ) {
    assert.deepEqual(isLoopback(h), false, h);
  }
});

Deno.test("writeAll keeps writing until every byte is taken", async () => {
  const taken: number[] = [];
  const w = {
    write(p: Uint8Array) {
      taken.push(...p.subarray(0, 2));
      return Promise.resolve(Math.min(2, p.length));
    },
  };
  await writeAll(w, new Uint8Array([1, 2, 3, 4, 5]));
  assert.deepEqual(taken, [1, 2, 3, 4, 5]);
});
