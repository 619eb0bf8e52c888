/** lib/demo: its two self-check clients, what it prints, and one in-process `--once` run. */
import assert from "node:assert/strict";
import { httpGet, socks5Connect } from "../../lib/demo/clients.ts";
import { runDemo } from "../../lib/demo/run.ts";
import { type DemoLayout, describe, tryIt } from "../../lib/demo/text.ts";
import { readExactly, writeAll } from "../helpers/servers.ts";

Deno.test("httpGet returns the body of a 200 and fails on any other status", async () => {
  let status = 200;
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response("body\n", { status }),
  );
  const conn = () => Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  assert.equal(await httpGet(await conn(), "x"), "body\n");
  status = 503;
  await assert.rejects(httpGet(await conn(), "x"), /HTTP status 503/);
});

/** A one-connection SOCKS5 server: checks the greeting and request, then answers `reply`. */
function fakeSocks5(reply: number) {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const seen = (async () => {
    const conn = await l.accept();
    l.close();
    try {
      assert.deepEqual([...await readExactly(conn, 3)], [5, 1, 0]);
      await writeAll(conn, new Uint8Array([5, 0]));
      const head = await readExactly(conn, 5);
      const rest = await readExactly(conn, head[4] + 2);
      await writeAll(conn, new Uint8Array([5, reply, 0, 1, 127, 0, 0, 1, 0, 0]));
      return { head: [...head], name: new TextDecoder().decode(rest.subarray(0, head[4])), rest };
    } finally {
      conn.close();
    }
  })();
  return { port: l.addr.port, seen };
}

Deno.test("socks5Connect sends a CONNECT by name and fails on a non-zero reply", async () => {
  const ok = fakeSocks5(0);
  const conn = await socks5Connect({
    proxyHost: "127.0.0.1",
    proxyPort: ok.port,
    host: "localhost",
    port: 8080,
  });
  conn.close();
  const got = await ok.seen;
  assert.deepEqual(got.head, [5, 1, 0, 3, 9]);
  assert.equal(got.name, "localhost");
  assert.deepEqual([...got.rest.subarray(9)], [8080 >> 8, 8080 & 0xff]);

  const refused = fakeSocks5(5);
  await assert.rejects(
    socks5Connect({ proxyHost: "127.0.0.1", proxyPort: refused.port, host: "h", port: 1 }),
    /SOCKS5 reply 0x05/,
  );
  await refused.seen;
});

const LAYOUT: DemoLayout = {
  relayUrl: "ws://127.0.0.1:1",
  hyco: "demo",
  allow: ["127.0.0.1:*", "localhost:*"],
  host: "127.0.0.1",
  targetPort: 2,
  pfPort: 3,
  socksPort: 4,
  policy: { name: "p", key: "secret" },
  generatedKey: true,
};

Deno.test("describe and tryIt: every port, and the key only when generated", () => {
  const banner = describe({ ...LAYOUT, opsAddr: "127.0.0.1:9" });
  assert.match(banner, /port-forward +127\.0\.0\.1:3 -> 127\.0\.0\.1:2/);
  assert.match(banner, /socks5-proxy +127\.0\.0\.1:4/);
  assert.match(banner, /--allow 127\.0\.0\.1:\* --allow localhost:\*/);
  assert.match(banner, /http:\/\/127\.0\.0\.1:9\/metrics/);
  assert.doesNotMatch(describe(LAYOUT), /metrics/);
  assert.match(tryIt(LAYOUT), /AZTUNNEL_KEY='secret'/);
  assert.match(tryIt(LAYOUT), /curl --socks5-hostname 127\.0\.0\.1:4 http:\/\/localhost:2\//);
  assert.doesNotMatch(tryIt({ ...LAYOUT, generatedKey: false }), /secret/);
  // From source the commands name the checkout's bin/aztunnel, never `deno run -A …`.
  assert.match(tryIt(LAYOUT), /\/bin\/aztunnel relay-sender connect/);
  assert.doesNotMatch(tryIt(LAYOUT), /deno run/);
});

Deno.test("runDemo --once: both self-checks pass in-process, and it stops cleanly", async () => {
  const printed: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => void printed.push(args.join(" "));
  const ready: boolean[] = [];
  let relayUp = false;
  try {
    await runDemo({
      once: true,
      hyco: "demo",
      quiet: true,
      signal: new AbortController().signal,
      onRelayServer: () => relayUp = true,
      onReady: (up) => ready.push(up),
    });
  } finally {
    console.log = log;
  }
  const text = printed.join("\n");
  assert.match(text, /ok {4}HTTP GET through the port-forward/);
  assert.match(text, /ok {4}HTTP GET through SOCKS5/);
  assert.match(text, /Self-check passed; stopping \(--once\)\./);
  assert.deepEqual(ready, [true, false]);
  assert.ok(relayUp);
});
