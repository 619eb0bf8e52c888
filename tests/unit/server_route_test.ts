import assert from "node:assert/strict";
import {
  applicationQuery,
  isPathPrefix,
  longestNameMatch,
  parseRoute,
  type Route,
  trimSlashes,
} from "../../lib/server/route.ts";
import {
  acceptAddress,
  buildAcceptMessage,
  escapeUrlPart,
} from "../../lib/server/accept_message.ts";
import { headerNames } from "../../lib/server/conn_watch.ts";
import { ListenerRegistry } from "../../lib/server/registry.ts";
import { newRendezvousId, RendezvousTable } from "../../lib/server/rendezvous.ts";

function hc(route: Route) {
  assert.equal(route.kind, "hc");
  if (route.kind !== "hc") throw new Error("unreachable");
  return route.target;
}

Deno.test("parseRoute: healthz, non-$hc and bad paths", () => {
  assert.deepEqual(parseRoute("/healthz"), { kind: "healthz" });
  assert.deepEqual(parseRoute("/healthz?x=1"), { kind: "healthz" });
  assert.deepEqual(parseRoute("/"), { kind: "error", status: 404, reason: "Not Found" });
  assert.deepEqual(parseRoute("/hc/x"), { kind: "error", status: 404, reason: "Not Found" });
  assert.deepEqual(parseRoute("/$hcx/a"), { kind: "error", status: 404, reason: "Not Found" });
  assert.deepEqual(parseRoute("/$hc/"), {
    kind: "error",
    status: 404,
    reason: "Endpoint does not exist",
  });
  assert.equal((parseRoute("/$hc/a%ZZ") as { status: number }).status, 400);
  assert.equal((parseRoute("/$hc/a%0Ab") as { status: number }).status, 400);
  assert.equal((parseRoute("/$hc/a?sb-hc-action=request") as { status: number }).status, 400);
  assert.equal((parseRoute("/$hc/a?sb-hc-action=LISTEN") as { status: number }).status, 400);
});

Deno.test("parseRoute: $hc and %24hc, decoding, trailing slashes, actions", () => {
  const a = hc(parseRoute("/$hc/hyco?sb-hc-action=listen&sb-hc-id=abc"));
  assert.equal(a.action, "listen");
  assert.equal(a.path, "hyco");
  assert.equal(a.rawPath, "hyco");
  assert.equal(a.query.get("sb-hc-id"), "abc");

  const b = hc(parseRoute("/%24hc/a%2Fb/sub/?x=1&sb-hc-action=connect"));
  assert.equal(b.action, "connect");
  assert.equal(b.rawPath, "a%2Fb/sub/");
  assert.equal(b.path, "a/b/sub");
  assert.equal(b.rawQuery, "x=1&sb-hc-action=connect");

  assert.equal(hc(parseRoute("/%24HC/x")).path, "x");
  // No action = connect (the .NET test suite relies on it).
  assert.equal(hc(parseRoute("/$hc/x")).action, "connect");
  assert.equal(hc(parseRoute("/$hc/x?sb-hc-action=")).action, "connect");
  assert.equal(hc(parseRoute("/$hc/x?sb-hc-action=accept&sb-hc-id=1")).action, "accept");
  // Form decoding: `+` is a space (what .NET's WebUtility.UrlEncode writes).
  const t = hc(parseRoute("/$hc/x?sb-hc-token=SharedAccessSignature+sr%3Dabc"));
  assert.equal(t.query.get("sb-hc-token"), "SharedAccessSignature sr=abc");
  assert.equal(hc(parseRoute("/$hc/with%20space")).path, "with space");
});

Deno.test("trimSlashes, isPathPrefix and longestNameMatch work at / boundaries", () => {
  assert.equal(trimSlashes("//a/b//"), "a/b");
  assert.equal(trimSlashes("///"), "");
  assert.ok(isPathPrefix("", "anything"));
  assert.ok(isPathPrefix("hyco", "hyco"));
  assert.ok(isPathPrefix("HyCo", "hyco/sub"));
  assert.ok(!isPathPrefix("hyco", "hycox"));
  assert.ok(!isPathPrefix("hyco/sub", "hyco"));
  assert.equal(longestNameMatch("a/b/c", ["a", "a/b", "a/bc", "b"]), "a/b");
  assert.equal(longestNameMatch("A/B", ["a", "a/b"]), "a/b");
  assert.equal(longestNameMatch("ab", ["a"]), undefined);
  assert.equal(longestNameMatch("x", []), undefined);
});

Deno.test("applicationQuery drops sb-hc-* and keeps the rest verbatim", () => {
  assert.equal(applicationQuery(""), "");
  assert.equal(
    applicationQuery("x=1&sb-hc-action=connect&y=a%20b&sb-hc-token=t&SB-HC-ID=q&z&sb%2Dhc-id=2"),
    "x=1&y=a%20b&z",
  );
});

Deno.test("accept address and message match the Azure shape", () => {
  const base = { scheme: "wss" as const, host: "relay.local:9443" };
  assert.equal(
    acceptAddress({ base, rawPath: "a%2Fb/sub", rawQuery: "q=1&sb-hc-action=connect", id: "i d" }),
    "wss://relay.local:9443/$hc/a%2Fb/sub?q=1&sb-hc-action=accept&sb-hc-id=i%20d",
  );
  const headers = new Headers({
    "Sec-WebSocket-Key": "k==",
    ServiceBusAuthorization: "secret",
    "X-Custom": "v",
  });
  headers.append("X-Multi", "1");
  headers.append("X-Multi", "2");
  const json = buildAcceptMessage({
    base: { scheme: "ws", host: "127.0.0.1:8080" },
    rawPath: "hyco",
    rawQuery: "sb-hc-action=connect&sb-hc-token=secret",
    id: "ID1",
    headers,
    remote: { hostname: "127.0.0.1", port: 5555 },
  });
  assert.ok(!json.includes("secret"));
  assert.deepEqual(JSON.parse(json), {
    accept: {
      address: "ws://127.0.0.1:8080/$hc/hyco?sb-hc-action=accept&sb-hc-id=ID1",
      id: "ID1",
      connectHeaders: { "sec-websocket-key": "k==", "x-custom": "v", "x-multi": "1, 2" },
      remoteEndpoint: { address: "127.0.0.1", port: 5555 },
    },
  });
  // .NET's member order.
  assert.deepEqual(Object.keys(JSON.parse(json).accept), [
    "address",
    "id",
    "connectHeaders",
    "remoteEndpoint",
  ]);
});

class L {
  constructor(readonly name: string, public dispatchable = true) {}
}

Deno.test("registry caps per HC (case-insensitive) and round-robins over live listeners", () => {
  const reg = new ListenerRegistry<L>(3);
  const a = new L("a"), b = new L("b"), c = new L("c"), d = new L("d");
  assert.ok(reg.add("Hyco", a));
  assert.ok(reg.add("hyco", b));
  assert.ok(reg.add("HYCO", c));
  assert.ok(!reg.add("hyco", d));
  assert.ok(reg.add("other", d));
  assert.equal(reg.count("hyco"), 3);
  assert.deepEqual(reg.snapshot(), { Hyco: 3, other: 1 });
  assert.deepEqual([1, 2, 3, 4].map(() => reg.pick("hyco")?.name), ["a", "b", "c", "a"]);
  b.dispatchable = false;
  assert.deepEqual([1, 2, 3].map(() => reg.pick("hyco")?.name), ["c", "a", "c"]);
  assert.equal(reg.pick("hyco", new Set([a, c])), undefined);
  assert.ok(reg.remove("hyco", a));
  assert.ok(!reg.remove("hyco", a));
  b.dispatchable = true;
  assert.deepEqual([1, 2, 3].map(() => reg.pick("hyco")?.name), ["b", "c", "b"]);
  assert.ok(reg.remove("hyco", b));
  assert.ok(reg.remove("hyco", c));
  assert.equal(reg.pick("hyco"), undefined);
  assert.deepEqual(reg.snapshot(), { other: 1 });
});

Deno.test("registry matches sender paths to listening names in any-name mode", () => {
  const reg = new ListenerRegistry<L>(25);
  reg.add("a", new L("1"));
  reg.add("a/b", new L("2"));
  assert.equal(reg.matchListening("a/b/c"), "a/b");
  assert.equal(reg.matchListening("A/x"), "a");
  assert.equal(reg.matchListening("ab"), undefined);
});

Deno.test("rendezvous ids are single-use: claim or expire, whichever comes first", async () => {
  const table = new RendezvousTable<string>();
  const p = table.create("x");
  assert.throws(() => table.create("x"));
  assert.equal(table.size, 1);
  assert.ok(table.claim("x", "v"));
  assert.ok(!table.claim("x", "w"));
  assert.ok(!table.expire("x"));
  assert.equal(await p.outcome, "v");
  table.create("y");
  assert.ok(table.expire("y"));
  assert.ok(!table.claim("y", "late"));
  assert.equal(table.size, 0);
});

Deno.test("newRendezvousId leads with a safe sender id and is otherwise random", () => {
  const uuid = /[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/;
  assert.match(newRendezvousId(null), new RegExp(`^${uuid.source}`));
  assert.match(newRendezvousId("abc-1"), new RegExp(`^abc-1_${uuid.source}`));
  assert.match(newRendezvousId("bad id&"), new RegExp(`^${uuid.source}`));
  assert.match(newRendezvousId("x".repeat(65)), new RegExp(`^${uuid.source}`));
  assert.notEqual(newRendezvousId(null), newRendezvousId(null));
});

Deno.test("accept address: '#' and '?' and raw bytes are escaped, existing escapes kept", () => {
  const base = { scheme: "ws" as const, host: "h:1" };
  assert.equal(
    acceptAddress({ base, rawPath: "a#b?c%2F\xc3\xa9 d", rawQuery: "x=1#y&q=a?b", id: "i" }),
    "ws://h:1/$hc/a%23b%3Fc%2F%C3%A9%20d?x=1%23y&q=a?b&sb-hc-action=accept&sb-hc-id=i",
  );
  assert.equal(escapeUrlPart("100%", /[0-9]/), "100%25");
  assert.equal(escapeUrlPart("%zz%4a", /[a-z0-9]/), "%25zz%4a");
});

Deno.test("connectHeaders use the raw names when given, first spelling of a repeated name", () => {
  const headers = new Headers([["X-Multi", "1"], ["x-multi", "2"], [
    "ServiceBusAuthorization",
    "s",
  ]]);
  headers.set("host", "h");
  const json = buildAcceptMessage({
    base: { scheme: "ws", host: "h" },
    rawPath: "hyco",
    rawQuery: "",
    id: "i",
    headers,
    rawHeaderNames: headerNames(
      new TextEncoder().encode(
        "GET / HTTP/1.1\r\nHOST: h\r\nX-Multi: 1\r\nx-multi: 2\r\nServiceBusAuthorization: s",
      ),
    ),
    remote: { hostname: "127.0.0.1", port: 1 },
  });
  assert.deepEqual(JSON.parse(json).accept.connectHeaders, { HOST: "h", "X-Multi": "1, 2" });
});
