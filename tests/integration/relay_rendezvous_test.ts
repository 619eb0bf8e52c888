import assert from "node:assert/strict";
import { acceptRendezvous, rejectRendezvous } from "../../lib/relay/rendezvous.ts";
import { RelayDialError } from "../../lib/relay/dial_error.ts";
import { getLogger } from "../../lib/observe/log.ts";
import { deferred, type FakeRelay, startFakeRelay } from "../helpers/fake_relay.ts";
import { captureLogs } from "../helpers/logs.ts";

const address = (relay: FakeRelay) =>
  `ws://${relay.endpoint.host}/$hc/hc?sb-hc-action=accept&sb-hc-id=abc_G1`;

function code(c: string, status?: number) {
  return (err: unknown) => {
    assert.ok(err instanceof RelayDialError, String(err));
    assert.equal(err.code, c, err.message);
    assert.equal(err.status, status);
    return true;
  };
}

Deno.test("acceptRendezvous dials the address verbatim, without credentials", async () => {
  await using logs = await captureLogs();
  const served = deferred();
  await using relay = startFakeRelay(async (req) => {
    const ws = await req.upgrade();
    await ws.send("from sender");
    for (let m = await ws.receive(); m; m = await ws.receive());
    await ws.close();
    served.resolve();
  });
  const log = getLogger({ listener_id: "L", accept_id: "A" });
  const conn = await acceptRendezvous(address(relay), { logger: log });
  const seen = relay.requests[0];
  assert.equal(seen.req.target, "/$hc/hc?sb-hc-action=accept&sb-hc-id=abc_G1");
  assert.equal(seen.token, null);
  assert.equal(seen.req.headers.get("servicebusauthorization"), null);
  assert.deepEqual(await conn.receive(), { type: "text", data: "from sender" });
  await conn.close();
  await served.promise;
  const ok = await logs.waitFor([/level=INFO/, /msg=accept_ok/]);
  assert.match(ok, /accept_id=A/);
  await logs.waitFor([/level=DEBUG/, /msg="accept dial complete"/, /ok=true/]);
});

Deno.test("acceptRendezvous reports refusals as accept_dropped", async () => {
  await using logs = await captureLogs();
  await using relay = startFakeRelay((req, _s, i) =>
    req.respond(i === 0 ? 403 : 500, { reason: "URL not valid" })
  );
  const log = getLogger({ accept_id: "A" });
  await assert.rejects(acceptRendezvous(address(relay), { logger: log }), code("auth_failed", 403));
  await assert.rejects(acceptRendezvous(address(relay), { logger: log }), code("rejected", 500));
  const auth = await logs.waitFor([/level=WARN/, /msg=accept_dropped/, /reason=auth_failed/]);
  assert.match(auth, /error="dial rendezvous: HTTP 403 URL not valid"/);
  await logs.waitFor([/msg=accept_dropped/, /reason=dial_failed/]);
  assert.equal(logs.count(/accept_ok/), 0);
});

Deno.test("acceptRendezvous refuses non-WebSocket addresses and honours its deadline", async () => {
  await assert.rejects(acceptRendezvous("https://x/$hc/hc"), code("relay_failed"));
  await assert.rejects(acceptRendezvous("not a url"), code("relay_failed"));
  const release = deferred();
  await using relay = startFakeRelay(() => release.promise);
  try {
    await assert.rejects(
      acceptRendezvous(address(relay), { timeoutMs: 100 }),
      code("dial_timeout"),
    );
  } finally {
    release.resolve();
  }
});

Deno.test("rejectRendezvous sends the status and treats 410 as success", async () => {
  await using relay = startFakeRelay((req) => req.respond(410, { reason: "Gone" }));
  await rejectRendezvous(address(relay), 403, "Not allowed (policy)!");
  const url = relay.requests[0].req.url;
  assert.equal(url.searchParams.get("sb-hc-action"), "accept");
  assert.equal(url.searchParams.get("sb-hc-id"), "abc_G1");
  assert.equal(url.searchParams.get("sb-hc-statusCode"), "403");
  assert.equal(url.searchParams.get("sb-hc-statusDescription"), "Not allowed (policy)!");
  assert.match(
    relay.requests[0].req.target,
    /&sb-hc-statusCode=403&sb-hc-statusDescription=Not%20allowed%20%28policy%29%21$/,
  );
});

Deno.test("rejectRendezvous fails when the relay refuses or ignores the rejection", async () => {
  await using relay = startFakeRelay(async (req, _s, i) => {
    if (i === 0) return req.respond(403, { reason: "URL not valid" });
    await req.upgrade();
  });
  await assert.rejects(rejectRendezvous(address(relay), 503, "busy"), code("auth_failed", 403));
  await assert.rejects(
    rejectRendezvous(address(relay), 503, "busy"),
    (err: unknown) => {
      code("relay_failed")(err);
      assert.match((err as Error).message, /answered 101 instead of 410/);
      return true;
    },
  );
  await assert.rejects(rejectRendezvous(address(relay), 99, "x"), /invalid rejection status/);
});
