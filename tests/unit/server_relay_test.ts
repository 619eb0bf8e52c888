/**
 * The local relay over real sockets: handshakes, auth, routing, listener cap, rendezvous (accept,
 * reject, reuse, timeout), renewToken, token expiry, shutdown. Clients are lib/ws connections.
 */
import assert from "node:assert/strict";
import { connectWebSocket, type WebSocketConn } from "../../lib/ws/mod.ts";
import { createSasToken } from "../../lib/relay/sas.ts";
import { signHs256Jwt } from "../helpers/fake_token_endpoint.ts";
import { startRelayServer } from "../../lib/server/mod.ts";
import { AztunnelError, UsageError } from "../../lib/errors.ts";
import { configureLogging, resetLogging } from "../../lib/observe/log.ts";
import {
  acceptConnection,
  closePair,
  connectHeader,
  connectSender,
  expectStatus,
  listen,
  POLICIES,
  sasToken,
  withRelay,
} from "./server_helpers_test.ts";

Deno.test("healthz, non-$hc paths, non-upgrade requests, bad actions", async () => {
  await withRelay({}, async (srv) => {
    const health = await fetch(`http://${srv.addr.hostname}:${srv.addr.port}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(await health.text(), "ok");
    const nf = await fetch(`http://${srv.addr.hostname}:${srv.addr.port}/nope`);
    assert.equal(nf.status, 404);
    await nf.body?.cancel();
    const plain = await fetch(`http://${srv.addr.hostname}:${srv.addr.port}/$hc/x`);
    assert.equal(plain.status, 400);
    await plain.body?.cancel();
    await expectStatus(
      connectWebSocket(`${srv.url}/$hc/x?sb-hc-action=request`, { proxy: "none" }),
      400,
    );
  });
});

Deno.test("listen + connect + accept: messages both ways keep type and boundaries", async () => {
  await withRelay({}, async (srv) => {
    const control = await listen(srv, "hyco");
    const senderP = connectSender(srv, "hyco", {
      headers: { "X-Custom": "hello" },
      query: "app=1&sb-hc-id=sender-1",
    });
    const { accept, conn: lconn } = await acceptConnection(control);
    const sender = await senderP;
    assert.match(accept.id, /^sender-1_[0-9a-f-]{36}$/);
    assert.equal(connectHeader(accept, "x-custom"), "hello");
    assert.ok(connectHeader(accept, "sec-websocket-key"));
    assert.equal(connectHeader(accept, "servicebusauthorization"), undefined);
    assert.ok(!accept.address.includes("sb-hc-token"));
    assert.match(
      accept.address,
      new RegExp(
        `^ws://127\\.0\\.0\\.1:${srv.addr.port}/\\$hc/hyco\\?app=1&sb-hc-action=accept&sb-hc-id=`,
      ),
    );
    assert.equal(accept.remoteEndpoint.address, "127.0.0.1");
    assert.equal(typeof accept.remoteEndpoint.port, "number");

    await sender.send("text from sender");
    await sender.send(new Uint8Array([1, 2, 3]));
    await sender.send(new Uint8Array(0));
    assert.deepEqual(await lconn.receive(), { type: "text", data: "text from sender" });
    assert.deepEqual(await lconn.receive(), { type: "binary", data: new Uint8Array([1, 2, 3]) });
    assert.deepEqual(await lconn.receive(), { type: "binary", data: new Uint8Array(0) });
    const big = new Uint8Array(200_000).map((_, i) => (i * 31) & 0xff);
    await lconn.send(big);
    await lconn.send("ünïcode ✓");
    assert.deepEqual(await sender.receive(), { type: "binary", data: big });
    assert.deepEqual(await sender.receive(), { type: "text", data: "ünïcode ✓" });

    const stats = srv.stats();
    assert.deepEqual(stats.listeners, { hyco: 1 });
    assert.equal(stats.bridgedConnections, 1);
    assert.equal(stats.pendingRendezvous, 0);
    assert.equal(stats.bytesSenderToListener, 16 + 3);
    assert.equal(
      stats.bytesListenerToSender,
      200_000 + new TextEncoder().encode("ünïcode ✓").length,
    );

    await closePair(sender, lconn, 1000, "bye");
    await control.close();
  });
});

Deno.test("subprotocol: the listener's choice is echoed to both legs", async () => {
  await withRelay({}, async (srv) => {
    const control = await listen(srv, "hyco");
    const senderP = connectSender(srv, "hyco", { protocols: ["p1", "p2"] });
    const { conn: lconn, accept } = await acceptConnection(control, ["p2"]);
    assert.equal(connectHeader(accept, "sec-websocket-protocol"), "p1, p2");
    const sender = await senderP;
    assert.equal(lconn.protocol, "p2");
    assert.equal(sender.protocol, "p2");
    await closePair(sender, lconn);
    await control.close();
  });
});

Deno.test("token in the ServiceBusAuthorization header, form-encoded query, %24hc and no action", async () => {
  await withRelay({}, async (srv) => {
    const tok = await sasToken("hyco");
    const control = await connectWebSocket(`${srv.url}/%24hc/hyco?sb-hc-action=listen`, {
      headers: { ServiceBusAuthorization: tok },
      proxy: "none",
    });
    // .NET's WebUtility.UrlEncode writes the space as `+`; no sb-hc-action means connect.
    const q = encodeURIComponent(tok).replaceAll("%20", "+");
    const senderP = connectWebSocket(`${srv.url}/$hc/hyco?sb-hc-token=${q}`, { proxy: "none" });
    const { conn: lconn } = await acceptConnection(control);
    const sender = await senderP;
    await closePair(sender, lconn);
    await control.close();
  });
});

Deno.test("404 when no listener or unknown hyco; case-insensitive names; suffix routing", async () => {
  await withRelay({ hycos: ["Known", "a/b"] }, async (srv) => {
    await expectStatus(connectSender(srv, "known"), 404, /Endpoint does not exist/);
    await expectStatus(connectSender(srv, "unknown"), 404, /Endpoint does not exist/);
    await expectStatus(listen(srv, "unknown"), 404);
    await expectStatus(listen(srv, "known/sub"), 404);
    const control = await listen(srv, "KNOWN");
    assert.deepEqual(srv.stats().listeners, { Known: 1 });
    const senderP = connectSender(srv, "known/some/suffix");
    const { accept, conn } = await acceptConnection(control);
    assert.match(accept.address, /\/\$hc\/known\/some\/suffix\?sb-hc-action=accept&/);
    await closePair(await senderP, conn);
    // A name with a slash, sent escaped (Go's PathEscape) or not.
    const ab = await listen(srv, "a%2Fb");
    const s2 = connectSender(srv, "a/b/c");
    const { conn: c2 } = await acceptConnection(ab);
    await closePair(await s2, c2);
    await ab.close();
    await control.close();
  });
});

Deno.test("any-name mode: senders reach the longest listening name at a / boundary", async () => {
  await withRelay({}, async (srv) => {
    const a = await listen(srv, "a");
    const ab = await listen(srv, "a/b");
    await expectStatus(connectSender(srv, "ab"), 404);
    const s1 = connectSender(srv, "a/b/x");
    const { conn: c1 } = await acceptConnection(ab);
    const s2 = connectSender(srv, "a/x");
    const { conn: c2 } = await acceptConnection(a);
    await closePair(await s1, c1);
    await closePair(await s2, c2);
    await a.close();
    await ab.close();
  });
});

Deno.test("auth: 401 missing/bad signature/expired, 403 wrong rights or audience", async () => {
  await withRelay({}, async (srv) => {
    const raw = (path: string, q: string) =>
      connectWebSocket(`${srv.url}/$hc/${path}?${q}`, { proxy: "none" });
    await expectStatus(raw("hyco", "sb-hc-action=listen"), 401, /missing token/);
    await expectStatus(raw("hyco", "sb-hc-action=connect"), 401, /missing token/);
    const badSig = await createSasToken("https://h/hyco", "all", "wrong", Date.now() / 1000 + 60);
    await expectStatus(listen(srv, "hyco", badSig), 401, /invalid signature/);
    const expired = await createSasToken("https://h/hyco", "all", "k-all", Date.now() / 1000 - 5);
    await expectStatus(listen(srv, "hyco", expired), 401, /expired/);
    await expectStatus(listen(srv, "hyco", await sasToken("hyco", "send")), 403, /Listen right/);
    const control = await listen(srv, "hyco", await sasToken("hyco", "listen"));
    await expectStatus(
      connectSender(srv, "hyco", { token: await sasToken("hyco", "listen") }),
      403,
      /Send right/,
    );
    await expectStatus(
      connectSender(srv, "hyco", { token: await sasToken("other") }),
      403,
      /audience/,
    );
    const ok = connectSender(srv, "hyco", { token: await sasToken("hyco", "manage") });
    const { conn } = await acceptConnection(control);
    await closePair(await ok, conn);
    await control.close();
  });
});

Deno.test("HS256 JWTs are accepted with --entra-jwt-key", async () => {
  await withRelay({ entraJwtKey: "shh" }, async (srv) => {
    const jwt = await signHs256Jwt({
      exp: Math.floor(Date.now() / 1000) + 600,
      aud: "https://relay.azure.net",
      roles: ["Listen", "Send"],
    }, "shh");
    const control = await listen(srv, "hyco", jwt);
    const senderP = connectSender(srv, "hyco", { token: jwt, header: true });
    const { conn } = await acceptConnection(control);
    await closePair(await senderP, conn);
    await control.close();
    await expectStatus(listen(srv, "hyco", await signHs256Jwt({ exp: 1 }, "shh")), 401, /expired/);
  });
});

Deno.test("the 26th listener is refused with 403 MaximumListenersPerEndpoint", async () => {
  await withRelay({}, async (srv) => {
    const controls: WebSocketConn[] = [];
    for (let i = 0; i < 25; i++) controls.push(await listen(srv, "hyco"));
    await expectStatus(listen(srv, "hyco"), 403, /MaximumListenersPerEndpoint/);
    assert.deepEqual(srv.stats().listeners, { hyco: 25 });
    // Another HC is not affected; a freed slot is reusable.
    controls.push(await listen(srv, "other"));
    await controls[0].close();
    await waitFor(() => srv.stats().listeners.hyco === 24);
    controls.push(await listen(srv, "hyco"));
    await Promise.all(controls.map((c) => c.close()));
  });
});

Deno.test("round-robin over listeners, skipping one that went away", async () => {
  await withRelay({ maxListeners: 3 }, async (srv) => {
    const [a, b, c] = [await listen(srv, "h"), await listen(srv, "h"), await listen(srv, "h")];
    const got: string[] = [];
    const serve = async (ctl: WebSocketConn, name: string) => {
      const s = connectSender(srv, "h");
      const { conn } = await acceptConnection(ctl);
      got.push(name);
      await closePair(await s, conn);
    };
    for (const [ctl, name] of [[a, "a"], [b, "b"], [c, "c"], [a, "a"]] as const) {
      await serve(ctl, name);
    }
    await b.close();
    await waitFor(() => srv.stats().listeners.h === 2);
    for (const [ctl, name] of [[c, "c"], [a, "a"], [c, "c"]] as const) await serve(ctl, name);
    assert.deepEqual(got, ["a", "b", "c", "a", "c", "a", "c"]);
    await a.close();
    await c.close();
  });
});

Deno.test("accept ids are single-use and unknown ids are refused with 403", async () => {
  await withRelay({}, async (srv) => {
    const control = await listen(srv, "hyco");
    const senderP = connectSender(srv, "hyco");
    const { accept, conn } = await acceptConnection(control);
    const sender = await senderP;
    await expectStatus(connectWebSocket(accept.address, { proxy: "none" }), 403, /URL not valid/);
    const unknown = accept.address.replace(/sb-hc-id=[^&]+/, "sb-hc-id=nope");
    await expectStatus(connectWebSocket(unknown, { proxy: "none" }), 403);
    const reject = `${accept.address}&sb-hc-statusCode=401&sb-hc-statusDescription=x`;
    await expectStatus(connectWebSocket(reject, { proxy: "none" }), 403);
    await closePair(sender, conn);
    await control.close();
  });
});

Deno.test("reject: the sender gets the listener's status and reason, the listener 410", async () => {
  await withRelay({}, async (srv) => {
    const control = await listen(srv, "hyco");
    for (
      const [params, status, reason] of [
        [
          "sb-hc-statusCode=401&sb-hc-statusDescription=Status%20Description%20from%20test",
          401,
          "Status Description from test",
        ],
        ["sb-hc-statusCode=418", 418, ""],
        [
          "sb-hc-statusCode=400&sb-hc-statusDescription=evil%0D%0AX-Injected:%201",
          400,
          "evil??X-Injected: 1",
        ],
      ] as const
    ) {
      const senderP = connectSender(srv, "hyco");
      const accept = await nextAccept(control);
      await expectStatus(
        connectWebSocket(`${accept.address}&sb-hc-statusCode=99`, { proxy: "none" }),
        400,
      );
      await expectStatus(connectWebSocket(`${accept.address}&${params}`, { proxy: "none" }), 410);
      const err = await expectStatus(senderP, status);
      assert.equal(err.statusText, reason);
      assert.equal(err.headers.get("x-injected"), null);
    }
    // Without the sb-hc- prefix (as Node libraries write it) they are application parameters, as
    // on Azure: the dial is an accept.
    const senderP = connectSender(srv, "hyco");
    const accept = await nextAccept(control);
    const lconn = await connectWebSocket(
      `${accept.address}&statusCode=503&statusDescription=busy`,
      {
        proxy: "none",
      },
    );
    await closePair(await senderP, lconn);
    await control.close();
  });
});

Deno.test("rendezvous timeout: 504 when the listener never dials back; late dial gets 403", async () => {
  await withRelay({ rendezvousTimeoutMs: 150 }, async (srv) => {
    const control = await listen(srv, "hyco");
    const senderP = connectSender(srv, "hyco");
    const accept = await nextAccept(control);
    const t0 = performance.now();
    await expectStatus(senderP, 504, /Gateway Timeout/);
    assert.ok(performance.now() - t0 < 5_000);
    assert.equal(srv.stats().pendingRendezvous, 0);
    await expectStatus(connectWebSocket(accept.address, { proxy: "none" }), 403);
    await control.close();
  });
});

Deno.test("renewToken: a good token keeps the channel, a bad one closes it with 1008", async () => {
  await withRelay({}, async (srv) => {
    const control = await listen(srv, "hyco");
    await control.send(JSON.stringify({ renewToken: { token: await sasToken("hyco") } }));
    await control.send("not json");
    await control.send(JSON.stringify({ somethingElse: {} }));
    // The channel still dispatches after the renewal.
    const senderP = connectSender(srv, "hyco");
    const { conn } = await acceptConnection(control);
    await closePair(await senderP, conn);
    await control.send(JSON.stringify({ renewToken: { token: await sasToken("hyco", "send") } }));
    assert.equal(await control.receive(), null);
    assert.equal(control.closeInfo?.code, 1008);
    await control.close();
    await waitFor(() => srv.stats().listeners.hyco === undefined);
  });
});

Deno.test("a listener whose token lapsed (plus grace) is closed with 1008", async () => {
  await withRelay({ tokenGraceMs: 0 }, async (srv) => {
    const se = Math.floor(Date.now() / 1000) + 1;
    const control = await listen(
      srv,
      "hyco",
      await createSasToken("https://127.0.0.1/hyco", "all", "k-all", se),
    );
    assert.equal(await control.receive(), null);
    assert.ok(Date.now() >= se * 1000);
    assert.deepEqual(control.closeInfo, {
      code: 1008,
      reason: "authorization policy violated: token expired",
    });
    await control.close();
  });
});

Deno.test("close() tells listeners 1001, fails waiting senders, and leaks nothing", async () => {
  const srv = await startRelayServer({ bind: "127.0.0.1:0", policies: POLICIES });
  const control = await listen(srv, "hyco");
  const refused = expectStatus(connectSender(srv, "hyco"), 503, /shutting down/);
  await nextAccept(control);
  // A listener that answers the relay's Close lets shutdown finish without waiting out its grace.
  const answered = control.receive().then(async (msg) => {
    assert.equal(msg, null);
    assert.deepEqual(control.closeInfo, { code: 1001, reason: "relay server shutting down" });
    await control.close(1001);
  });
  const t0 = performance.now();
  await srv.close();
  assert.ok(performance.now() - t0 < 900, "shutdown waited for the grace period");
  await refused;
  await answered;
  await srv.finished;
  await srv.close(); // idempotent
});

Deno.test("the abort signal stops the server", async () => {
  const ac = new AbortController();
  const srv = await startRelayServer({
    bind: "127.0.0.1:0",
    policies: POLICIES,
    signal: ac.signal,
  });
  ac.abort();
  await srv.finished;
  const port = Number(new URL(srv.url).port);
  await assert.rejects(
    Deno.connect({ hostname: "127.0.0.1", port }),
    Deno.errors.ConnectionRefused,
  );
});

Deno.test("options: public URL rules, bind parsing, url of the server", async () => {
  await assert.rejects(startRelayServer({ bind: "0.0.0.0:0" }), UsageError);
  await assert.rejects(startRelayServer({ bind: "nonsense" }), UsageError);
  await assert.rejects(startRelayServer({ bind: "127.0.0.1:0", publicUrl: "ftp://x" }), UsageError);
  await assert.rejects(
    startRelayServer({ bind: "127.0.0.1:0", publicUrl: "https://x/path" }),
    UsageError,
  );
  await assert.rejects(startRelayServer({ bind: "127.0.0.1:0", maxListeners: 0 }), UsageError);
  await assert.rejects(startRelayServer({ bind: "127.0.0.1:0", latencyMs: -1 }), UsageError);
  // Beyond 2^31-1 ms setTimeout would fire at once.
  await assert.rejects(startRelayServer({ bind: "127.0.0.1:0", latencyMs: 2 ** 31 }), {
    message: "--latency must be at most 596h31m23.647s",
  });
  await assert.rejects(
    startRelayServer({ bind: "127.0.0.1:0", halfClosedTimeoutMs: 30 * 86_400_000 }),
    { message: "halfClosedTimeoutMs must be at most 596h31m23.647s" },
  );
  // Certificates Deno refuses are usage errors, found before anything is bound.
  await assert.rejects(
    startRelayServer({ bind: "127.0.0.1:0", tls: { cert: "not pem", key: "not pem" } }),
    (e: Error) =>
      e instanceof UsageError &&
      e.message === "invalid TLS certificate: No certificates found in certificate data",
  );
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    await assert.rejects(
      startRelayServer({ bind: `127.0.0.1:${busy.addr.port}` }),
      (e: Error) =>
        e instanceof AztunnelError && !(e instanceof UsageError) && e.code === "listen_failed" &&
        e.message.startsWith(`listen 127.0.0.1:${busy.addr.port}: `),
    );
  } finally {
    busy.close();
  }
  const srv = await startRelayServer({
    bind: "0.0.0.0:0",
    publicUrl: "https://relay.example:9443/",
    policies: POLICIES,
  });
  try {
    assert.equal(srv.url, "wss://relay.example:9443");
    // The accept address uses the public URL.
    const control = await connectWebSocket(
      `ws://127.0.0.1:${srv.addr.port}/$hc/h?sb-hc-action=listen&sb-hc-token=${
        encodeURIComponent(await sasToken("h"))
      }`,
      { proxy: "none" },
    );
    const senderP = connectWebSocket(
      `ws://127.0.0.1:${srv.addr.port}/$hc/h?sb-hc-token=${
        encodeURIComponent(await sasToken("h"))
      }`,
      { proxy: "none" },
    );
    const accept = await nextAccept(control);
    assert.match(
      accept.address,
      /^wss:\/\/relay\.example:9443\/\$hc\/h\?sb-hc-action=accept&sb-hc-id=/,
    );
    await expectStatus(
      connectWebSocket(
        `${
          accept.address.replace("wss://relay.example:9443", `ws://127.0.0.1:${srv.addr.port}`)
        }&sb-hc-statusCode=404`,
        { proxy: "none" },
      ),
      410,
    );
    await expectStatus(senderP, 404);
    await control.close();
  } finally {
    await srv.close();
  }
  const local = await startRelayServer({ bind: "localhost:0" });
  assert.match(local.url, /^ws:\/\/localhost:\d+$/);
  await local.close();
});

Deno.test("logs: listening line, listener registered/unregistered, rendezvous ok/failed", async () => {
  const lines: string[] = [];
  await configureLogging({ level: "debug", write: (l) => lines.push(l) });
  try {
    await withRelay({ rendezvousTimeoutMs: 100 }, async (srv) => {
      const control = await listen(srv, "hyco");
      // A listener that names itself: its id is logged as client_id, beside ours.
      const named = await listen(srv, "named", undefined, { query: "sb-hc-id=my-listener-1" });
      await named.close();
      await waitFor(() => lines.some((l) => l.includes('msg="listener unregistered" hyco=named')));
      const s1 = connectSender(srv, "hyco");
      const { conn } = await acceptConnection(control);
      await closePair(await s1, conn);
      const s2 = connectSender(srv, "hyco");
      await nextAccept(control);
      await expectStatus(s2, 504);
      await control.close();
      await waitFor(() => lines.some((l) => l.includes('msg="listener unregistered"')));
    });
  } finally {
    await resetLogging();
  }
  const text = lines.join("");
  assert.match(
    text,
    /msg="relay-server listening" addr=127\.0\.0\.1:\d+ url=ws:\/\/127\.0\.0\.1:\d+/,
  );
  // registration_id is the relay's own id; `listener_id` belongs to the listener process's logs.
  assert.doesNotMatch(text, /listener_id=/);
  const registered =
    /msg="listener registered" hyco=hyco registration_id=([A-Z2-7]{16}) remote=127\.0\.0\.1:\d+ principal=sas:all listeners=1\n/
      .exec(text);
  assert.ok(registered, text);
  assert.match(
    text,
    new RegExp(
      `msg="rendezvous ok" hyco=hyco rendezvous_id=\\S+ registration_id=${
        registered[1]
      } elapsed_ms=\\d+`,
    ),
  );
  assert.match(
    text,
    /msg="listener registered" hyco=named registration_id=[A-Z2-7]{16} client_id=my-listener-1 remote=/,
  );
  assert.match(
    text,
    /msg="listener unregistered" hyco=named registration_id=[A-Z2-7]{16} client_id=my-listener-1 reason=client_close listeners=0/,
  );
  assert.match(text, /msg="rendezvous failed" .*status=504/);
  assert.match(text, /msg="listener unregistered" .*reason=client_close/);
  assert.match(text, /msg="bridge ended"/);
  assert.ok(!text.includes("SharedAccessSignature"), "no token in logs");
});

async function nextAccept(control: WebSocketConn) {
  const msg = await control.receive();
  assert.ok(msg && msg.type === "text");
  return JSON.parse(msg.data).accept as { address: string; id: string };
}

/** Polls a condition that changes as a side effect of socket events, with a deadline. */
async function waitFor(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}
