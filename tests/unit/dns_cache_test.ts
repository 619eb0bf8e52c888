/** lib/net/dns_cache: positive answers for a TTL, and dials that use them without ever failing more. */
import assert from "node:assert/strict";
import { connectCached, DnsCache } from "../../lib/net/dns_cache.ts";

function clock(start = 1_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

Deno.test("dns cache: an address is reused within the TTL and dropped after it", () => {
  const c = clock();
  const cache = new DnsCache({ ttlMs: 30_000, now: c.now });
  cache.set("Relay.Example.net", "10.0.0.7");
  assert.equal(cache.get("relay.example.net"), "10.0.0.7");
  c.t += 29_999;
  assert.equal(cache.get("RELAY.example.NET"), "10.0.0.7");
  c.t += 1;
  assert.equal(cache.get("relay.example.net"), undefined);
  assert.equal(cache.size, 0);
});

Deno.test("dns cache: storing again restarts the TTL; delete forgets", () => {
  const c = clock();
  const cache = new DnsCache({ ttlMs: 100, now: c.now });
  cache.set("a.example", "10.0.0.1");
  c.t += 90;
  cache.set("a.example", "10.0.0.2");
  c.t += 90;
  assert.equal(cache.get("a.example"), "10.0.0.2");
  cache.delete("A.example");
  assert.equal(cache.get("a.example"), undefined);
});

Deno.test("dns cache: IP literals are not stored, and the oldest name goes past the cap", () => {
  const cache = new DnsCache({ maxEntries: 2 });
  cache.set("127.0.0.1", "127.0.0.1");
  cache.set("::1", "::1");
  assert.equal(cache.size, 0);
  cache.set("a.example", "10.0.0.1");
  cache.set("b.example", "10.0.0.2");
  cache.set("a.example", "10.0.0.3"); // stored again: now the newest
  cache.set("c.example", "10.0.0.4");
  assert.equal(cache.size, 2);
  assert.equal(cache.get("b.example"), undefined);
  assert.equal(cache.get("a.example"), "10.0.0.3");
  assert.equal(cache.get("c.example"), "10.0.0.4");
});

Deno.test("dns cache: a connect by name remembers the address it reached", async () => {
  using server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const cache = new DnsCache();
  const [conn, peer] = await Promise.all([
    connectCached(cache, { hostname: "localhost", port: server.addr.port }),
    server.accept(),
  ]);
  conn.close();
  peer.close();
  assert.equal(cache.get("localhost"), "127.0.0.1");
});

Deno.test("dns cache: a cached name is dialled by address, with no lookup", async () => {
  using server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const cache = new DnsCache();
  // .invalid never resolves (RFC 6761): only the cached address can reach the server.
  cache.set("relay.invalid", "127.0.0.1");
  const [conn, peer] = await Promise.all([
    connectCached(cache, { hostname: "relay.invalid", port: server.addr.port }),
    server.accept(),
  ]);
  conn.close();
  peer.close();
  await assert.rejects(connectCached(null, { hostname: "relay.invalid", port: server.addr.port }));
});

Deno.test("dns cache: a stale address is forgotten and the name dialled instead", async () => {
  using server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const cache = new DnsCache();
  // Loopback, but nothing listens there on this port: refused at once.
  cache.set("localhost", "127.0.0.2");
  const [conn, peer] = await Promise.all([
    connectCached(cache, { hostname: "localhost", port: server.addr.port }),
    server.accept(),
  ]);
  conn.close();
  peer.close();
  assert.equal(cache.get("localhost"), "127.0.0.1");
});

Deno.test("dns cache: a name that cannot connect is not cached", async () => {
  const cache = new DnsCache();
  await assert.rejects(connectCached(cache, { hostname: "nothing.invalid", port: 9 }));
  assert.equal(cache.size, 0);
});
