/**
 * relay-server under hostile or stuck peers, and as strict as Azure (issue 8, items 6 and 7):
 * handshake checks before a listener is woken, escaped accept addresses, header names as sent,
 * the cap on unfinished heads, pings on control channels, a frozen listener, idle rendezvous,
 * a separate rendezvous address, the `sr` host. Raw TCP clients where lib/ws would not misbehave.
 */
import assert from "node:assert/strict";
import { connectWebSocket, type WebSocketConn } from "../../lib/ws/mod.ts";
import type { RelayServer } from "../../lib/server/mod.ts";
import { createSasToken } from "../../lib/relay/sas.ts";
import {
  type AcceptMessage,
  closePair,
  connectSender,
  expectStatus,
  listen,
  POLICIES,
  sasToken,
  withRelay,
} from "./server_helpers_test.ts";
import { withDeadline } from "../helpers/proc.ts";

const KEY = "dGhlIHNhbXBsZSBub25jZQ==";
const latin1 = new TextDecoder("latin1");

interface RawResponse {
  readonly status: number;
  readonly reason: string;
  readonly head: string;
}

/** A raw TCP connection to the relay. */
async function rawConnect(srv: RelayServer): Promise<Deno.TcpConn> {
  return await Deno.connect({ hostname: srv.addr.hostname, port: srv.addr.port });
}

/** Writes `head` as is (latin1, one byte per char). */
async function writeRaw(conn: Deno.Conn, head: string): Promise<void> {
  const bytes = Uint8Array.from(head, (c) => c.charCodeAt(0));
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/** Reads a response head (up to the blank line). */
async function readHead(conn: Deno.Conn): Promise<RawResponse> {
  let text = "";
  const buf = new Uint8Array(4096);
  while (!text.includes("\r\n\r\n")) {
    const n = await conn.read(buf);
    if (n === null) throw new Error(`EOF after ${JSON.stringify(text)}`);
    text += latin1.decode(buf.subarray(0, n));
  }
  const m = /^HTTP\/1\.1 (\d{3}) ?([^\r]*)\r\n/.exec(text);
  assert.ok(m, text);
  return { status: Number(m[1]), reason: m[2], head: text.slice(0, text.indexOf("\r\n\r\n")) };
}

/** A WebSocket upgrade request head with exactly these lines after the request line. */
function upgradeHead(target: string, lines: readonly string[]): string {
  return `GET ${target} HTTP/1.1\r\n${lines.join("\r\n")}\r\n\r\n`;
}

function standardLines(srv: RelayServer, extra: readonly string[] = []): string[] {
  return [
    `Host: 127.0.0.1:${srv.addr.port}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${KEY}`,
    "Sec-WebSocket-Version: 13",
    ...extra,
  ];
}

async function tokenQuery(path: string): Promise<string> {
  return `sb-hc-token=${encodeURIComponent(await sasToken(path))}`;
}

async function nextAccept(control: WebSocketConn): Promise<AcceptMessage> {
  const msg = await control.receive();
  assert.ok(msg && msg.type === "text", "expected an accept message");
  return JSON.parse(msg.data).accept as AcceptMessage;
}

/** Resolves once `cond` holds; fails after `timeoutMs`. */
async function waitFor(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Reads until EOF or reset; returns how long that took. */
async function untilClosed(conn: Deno.Conn, timeoutMs: number): Promise<number> {
  const start = performance.now();
  const timer = setTimeout(() => conn.close(), timeoutMs);
  const buf = new Uint8Array(4096);
  try {
    while (await conn.read(buf) !== null) { /* discard */ }
  } catch (err) {
    if (err instanceof Deno.errors.BadResource) throw new Error("not closed in time");
  } finally {
    clearTimeout(timer);
  }
  return performance.now() - start;
}

/** A listener that completes its handshake and then never reads again (like a SIGSTOPped one). */
async function frozenListener(srv: RelayServer, path: string): Promise<Deno.TcpConn> {
  const conn = await rawConnect(srv);
  await writeRaw(
    conn,
    upgradeHead(`/$hc/${path}?sb-hc-action=listen&${await tokenQuery(path)}`, standardLines(srv)),
  );
  const res = await readHead(conn);
  assert.equal(res.status, 101, res.head);
  return conn;
}

Deno.test("a sender's bad WebSocket handshake is refused before any listener is woken", async () => {
  await withRelay({}, async (srv) => {
    const control = await listen(srv, "hyco");
    const target = `/$hc/hyco?sb-hc-id=bad&${await tokenQuery("hyco")}`;
    const cases: [string[], number, RegExp][] = [
      [
        standardLines(srv).map((l) =>
          l.startsWith("Sec-WebSocket-Key") ? "Sec-WebSocket-Key: abc" : l
        ),
        400,
        /Sec-WebSocket-Key/,
      ],
      [
        standardLines(srv).filter((l) => !l.startsWith("Sec-WebSocket-Key")),
        400,
        /Sec-WebSocket-Key/,
      ],
      [
        standardLines(srv).map((l) =>
          l.startsWith("Sec-WebSocket-Version") ? "Sec-WebSocket-Version: 8" : l
        ),
        426,
        /version/,
      ],
    ];
    for (const [lines, status, reason] of cases) {
      const conn = await rawConnect(srv);
      try {
        await writeRaw(conn, upgradeHead(target, lines));
        const res = await readHead(conn);
        assert.equal(res.status, status, res.head);
        assert.match(res.reason, reason);
        if (status === 426) assert.match(res.head, /\r\nSec-WebSocket-Version: 13(\r\n|$)/i);
      } finally {
        conn.close();
      }
    }
    // The listener saw none of them: the first accept it gets is the good sender's.
    const good = connectSender(srv, "hyco", { query: "sb-hc-id=good" });
    const accept = await nextAccept(control);
    assert.match(accept.id, /^good_/);
    const lconn = await connectWebSocket(accept.address, { proxy: "none" });
    await closePair(await good, lconn);
    await control.close();
  });
});

Deno.test("the accept address escapes '#', '?' and raw bytes of the sender's path and query", async () => {
  await withRelay({}, async (srv) => {
    const control = await listen(srv, "hyco");
    const conn = await rawConnect(srv);
    try {
      const target = `/$hc/hyco/a#b"\xc3\xa9%41?x=1#y&q=a?b&sb-hc-id=esc&${await tokenQuery(
        "hyco",
      )}`;
      await writeRaw(conn, upgradeHead(target, standardLines(srv)));
      const accept = await nextAccept(control);
      const prefix = `ws://127.0.0.1:${srv.addr.port}/$hc/hyco/a%23b%22%C3%A9%41?x=1%23y&q=a?b&` +
        `sb-hc-action=accept&sb-hc-id=esc_`;
      assert.ok(accept.address.startsWith(prefix), accept.address);
      const url = new URL(accept.address);
      assert.equal(url.hash, "");
      assert.equal(url.searchParams.get("sb-hc-action"), "accept");
      assert.equal(url.searchParams.get("sb-hc-id"), accept.id);
      const lconn = await connectWebSocket(accept.address, { proxy: "none" });
      assert.equal((await readHead(conn)).status, 101);
      lconn.closeNow();
      await lconn.closed;
    } finally {
      conn.close();
    }
    await control.close();
  });
});

Deno.test("connectHeaders carry the sender's header names as it wrote them", async () => {
  await withRelay({}, async (srv) => {
    const control = await listen(srv, "hyco");
    const conn = await rawConnect(srv);
    try {
      const token = await sasToken("hyco");
      const lines = [
        `host: 127.0.0.1:${srv.addr.port}`,
        "Upgrade: websocket",
        "CONNECTION: Upgrade",
        `Sec-WebSocket-Key: ${KEY}`,
        "Sec-WebSocket-Version: 13",
        `ServiceBusAuthorization: ${token}`,
        "Service-Configuration-Token: abc",
        "Microsoft-Guestgateway-Target: localhost:22",
        "X-Multi: 1",
        "x-multi: 2",
      ];
      await writeRaw(conn, upgradeHead("/$hc/hyco", lines));
      const accept = await nextAccept(control);
      assert.deepEqual(accept.connectHeaders, {
        host: `127.0.0.1:${srv.addr.port}`,
        Upgrade: "websocket",
        CONNECTION: "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
        "Service-Configuration-Token": "abc",
        "Microsoft-Guestgateway-Target": "localhost:22",
        "X-Multi": "1, 2",
      });
      const lconn = await connectWebSocket(accept.address, { proxy: "none" });
      assert.equal((await readHead(conn)).status, 101);
      lconn.closeNow();
      await lconn.closed;
    } finally {
      conn.close();
    }
    await control.close();
  });
});

Deno.test("connections beyond maxPendingHeads are closed at once; a finished head frees a slot", async () => {
  await withRelay({ maxPendingHeads: 3 }, async (srv) => {
    const silent = await Promise.all([1, 2, 3].map(() => rawConnect(srv)));
    try {
      // Accepted in arrival order: these three are counted before the next one is looked at.
      const extra = await rawConnect(srv);
      assert.ok(await untilClosed(extra, 2_000) < 2_000);
      extra.close();
      assert.equal(srv.connectionStats().refused, 1);
      // One of the three sends its head: it no longer counts, and a new connection is served.
      await writeRaw(silent[0], `GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`);
      assert.equal((await readHead(silent[0])).status, 200);
      await waitFor(() => srv.connectionStats().pendingHeads === 2);
      const health = await fetch(`http://127.0.0.1:${srv.addr.port}/healthz`);
      assert.equal(await health.text(), "ok");
    } finally {
      for (const c of silent) c.close();
    }
    await waitFor(() => srv.connectionStats().pendingHeads === 0);
  });
});

Deno.test("a listener that answers no ping is dropped; one that answers stays", async () => {
  await withRelay({ pingIntervalMs: 100, pongTimeoutMs: 200 }, async (srv) => {
    const alive = await listen(srv, "alive");
    // lib/ws answers pings while a receive is pending.
    const aliveEnd = alive.receive();
    const frozen = await frozenListener(srv, "frozen");
    try {
      await waitFor(() => srv.stats().listeners.frozen === undefined, 3_000);
      assert.ok(await untilClosed(frozen, 2_000) < 2_000);
    } finally {
      frozen.close();
    }
    // Several ping rounds later the answering listener is still registered.
    assert.deepEqual(srv.stats().listeners, { alive: 1 });
    await alive.close();
    assert.equal(await aliveEnd, null);
  });
});

Deno.test({
  name:
    "a frozen listener: every sender is answered by the rendezvous deadline; it gets no new work",
  // 300 senders with 15 KB heads: several MB of accept messages, more than loopback buffers hold.
  async fn() {
    const timeoutMs = 1_500;
    await withRelay({ rendezvousTimeoutMs: timeoutMs }, async (srv) => {
      const frozen = await frozenListener(srv, "hyco");
      const filler = "\xe9".repeat(15_000);
      const target = `/$hc/hyco?${await tokenQuery("hyco")}`;
      const head = upgradeHead(target, standardLines(srv, [`X-Filler: ${filler}`]));
      const results = await Promise.all(Array.from({ length: 300 }, async () => {
        const conn = await rawConnect(srv);
        try {
          await writeRaw(conn, head);
          const sent = performance.now();
          const res = await withDeadline(readHead(conn), timeoutMs + 1_500, "sender's answer");
          return {
            ...res,
            at: performance.now() - sent,
            closedIn: await untilClosed(conn, 3_000),
          };
        } finally {
          conn.close();
        }
      }));
      const waitedForDialBack = /the listener did not accept in time/;
      for (const r of results) {
        // 504 when the deadline passed; 404 once the frozen listener is known not to drain.
        assert.ok(r.status === 504 || r.status === 404, r.head);
        assert.ok(r.at < timeoutMs + 1_000, `answered after ${Math.round(r.at)} ms`);
        assert.ok(r.closedIn < 1_000);
      }
      // Some accept messages could not even be written: those senders were answered too.
      assert.ok(results.some((r) => !waitedForDialBack.test(r.reason)));
      // A live listener now takes the new tunnels at once; the frozen one is skipped.
      const live = await listen(srv, "hyco");
      for (const id of ["live1", "live2", "live3"]) {
        const t0 = performance.now();
        const senderP = connectSender(srv, "hyco", { query: `sb-hc-id=${id}` });
        const accept = await nextAccept(live);
        assert.match(accept.id, new RegExp(`^${id}_`));
        const lconn = await connectWebSocket(accept.address, { proxy: "none" });
        await closePair(await senderP, lconn);
        assert.ok(performance.now() - t0 < 1_000);
      }
      await live.close();
      frozen.close();
      await waitFor(() => srv.stats().listeners.hyco === undefined);
    });
  },
});

Deno.test("rendezvous legs idle out after rendezvousIdleTimeoutMs; pings keep them alive", async () => {
  const idleMs = 300;
  await withRelay({ rendezvousIdleTimeoutMs: idleMs }, async (srv) => {
    const control = await listen(srv, "hyco");
    // Silent pair: both legs are dropped once idle.
    {
      const senderP = connectSender(srv, "hyco");
      const lconn = await connectWebSocket((await nextAccept(control)).address, { proxy: "none" });
      const sender = await senderP;
      const t0 = performance.now();
      const [s, l] = await withDeadline(
        Promise.allSettled([sender.receive(), lconn.receive()]),
        idleMs + 2_000,
        "idle legs dropped",
      );
      const took = performance.now() - t0;
      assert.ok(took >= idleMs - 50 && took < idleMs + 1_500, `${took} ms`);
      assert.ok(s.status === "rejected" || s.value === null);
      assert.ok(l.status === "rejected" || l.value === null);
      sender.closeNow();
      lconn.closeNow();
      await Promise.all([sender.closed, lconn.closed]);
    }
    // Pinging pair (the sender pings, nobody sends data) outlives several idle periods.
    {
      const senderP = connectSender(srv, "hyco");
      const lconn = await connectWebSocket((await nextAccept(control)).address, { proxy: "none" });
      const sender = await senderP;
      const end = performance.now() + idleMs * 3;
      while (performance.now() < end) {
        await sender.ping(1_000);
        // Pacing, not synchronisation: a ping every third of the idle timeout.
        await new Promise((r) => setTimeout(r, idleMs / 3));
      }
      await sender.send("still here");
      assert.deepEqual(await lconn.receive(), { type: "text", data: "still here" });
      await closePair(sender, lconn);
    }
    await control.close();
  });
});

Deno.test("rendezvousUrl: accept addresses name a second host, which takes accept dials only", async () => {
  await withRelay({ rendezvousUrl: "ws://127.0.0.2:0" }, async (srv) => {
    assert.match(srv.rendezvousUrl ?? "", /^ws:\/\/127\.0\.0\.2:\d+$/);
    const control = await listen(srv, "hyco");
    const senderP = connectSender(srv, "hyco");
    const accept = await nextAccept(control);
    assert.ok(accept.address.startsWith(`${srv.rendezvousUrl}/$hc/hyco?sb-hc-action=accept&`));
    // A listener that dials the host it connected to, not the one it was given, fails as on Azure.
    const ownHost = accept.address.replace(srv.rendezvousUrl ?? "", srv.url);
    await expectStatus(connectWebSocket(ownHost, { proxy: "none" }), 404, /rendezvous address/);
    // The gateway host is no place to listen or send.
    const token = encodeURIComponent(await sasToken("hyco", "all", "127.0.0.2"));
    for (const action of ["listen", "connect"]) {
      await expectStatus(
        connectWebSocket(
          `${srv.rendezvousUrl}/$hc/hyco?sb-hc-action=${action}&sb-hc-token=${token}`,
          {
            proxy: "none",
          },
        ),
        404,
        /rendezvous dials only/,
      );
    }
    // The id was not used up by the wrong dial.
    const lconn = await connectWebSocket(accept.address, { proxy: "none" });
    await closePair(await senderP, lconn);
    await control.close();
  });
});

Deno.test("the sr host must be the relay's host; an sr without scheme grants nothing", async () => {
  await withRelay({}, async (srv) => {
    const other = await createSasToken(
      "https://localhost/hyco",
      "all",
      "k-all",
      Date.now() / 1000 + 60,
    );
    await expectStatus(listen(srv, "hyco", other), 401, /another host/);
    const p = POLICIES[0];
    const se = Math.floor(Date.now() / 1000) + 60;
    const bare = await foreignSas("other", p.key, p.name, se);
    await expectStatus(listen(srv, "hyco", bare), 401, /malformed SAS resource/);
    await expectStatus(
      connectSender(srv, "any/where", { token: bare }),
      401,
      /malformed SAS resource/,
    );
  });
});

/** A SAS token over `sr` exactly as given (no scheme added, no lowercasing). */
async function foreignSas(sr: string, key: string, keyName: string, se: number): Promise<string> {
  const mac = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(key),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const sig = new Uint8Array(
    await crypto.subtle.sign("HMAC", mac, new TextEncoder().encode(`${sr}\n${se}`)),
  );
  const b64 = btoa(String.fromCharCode(...sig));
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(b64)}&se=${se}&skn=${keyName}`;
}
