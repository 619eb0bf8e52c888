import assert from "node:assert/strict";
import {
  classifyDialError,
  dialTarget,
  DNS_TIMEOUT_MIN_MS,
  TargetDialError,
} from "../../lib/tunnel/dial_target.ts";
import { rejectHint } from "../../lib/tunnel/reject_hint.ts";

function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  return port;
}

Deno.test("dialTarget: connects, with keepalive, to an IPv4 target", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [conn, peer] = await Promise.all([
    dialTarget(`127.0.0.1:${l.addr.port}`, { timeoutMs: 5000, keepAlive: true }),
    l.accept(),
  ]);
  conn.close();
  peer.close();
  l.close();
});

Deno.test("dialTarget: a refused port is connection_refused", async () => {
  const port = closedPort();
  const err = await dialTarget(`127.0.0.1:${port}`, { timeoutMs: 5000 }).catch((e) => e);
  assert.ok(err instanceof TargetDialError);
  assert.equal(err.dialCode, "connection_refused");
  assert.match(err.message, new RegExp(`^dial tcp 127\\.0\\.0\\.1:${port}: `));
});

Deno.test("dialTarget: an .invalid name is dns_not_found", async () => {
  const err = await dialTarget("no-such-host.invalid:22", { timeoutMs: 5000 }).catch((e) => e);
  assert.ok(err instanceof TargetDialError);
  assert.equal(err.dialCode, "dns_not_found");
});

Deno.test("dialTarget: a malformed target fails unclassified", async () => {
  for (const t of ["no-port", "host:", "host:99999", ":22", "a:b:c"]) {
    const err = await dialTarget(t, { timeoutMs: 5000 }).catch((e) => e);
    assert.ok(err instanceof TargetDialError, t);
    assert.equal(err.dialCode, "", t);
  }
});

Deno.test("dialTarget: an aborted signal fails the dial", async () => {
  const ac = new AbortController();
  ac.abort(new DOMException("stop", "AbortError"));
  const err = await dialTarget("127.0.0.1:9", { timeoutMs: 5000, signal: ac.signal }).catch((e) =>
    e
  );
  assert.ok(err instanceof TargetDialError);
  assert.equal(err.dialCode, "");
});

Deno.test("classifyDialError: injected errors", () => {
  const cases: [unknown, string][] = [
    [new DOMException("late", "TimeoutError"), "timeout"],
    [new Deno.errors.TimedOut("Connection timed out (os error 110)"), "timeout"],
    [Object.assign(new Error("x"), { code: "ETIMEDOUT" }), "timeout"],
    [new Deno.errors.ConnectionRefused("Connection refused (os error 111)"), "connection_refused"],
    [new Error("No connection could be made (os error 10061)"), "connection_refused"],
    [Object.assign(new Error("No route to host"), { code: "EHOSTUNREACH" }), "host_unreachable"],
    [new Error("No route to host (os error 113)"), "host_unreachable"],
    [
      new Error("A socket operation was attempted to an unreachable host. (os error 10065)"),
      "host_unreachable",
    ],
    [
      new Deno.errors.NetworkUnreachable("Network is unreachable (os error 101)"),
      "network_unreachable",
    ],
    [Object.assign(new Error("x"), { code: "ENETUNREACH" }), "network_unreachable"],
    [new Error("failed to lookup address information: Name or service not known"), "dns_not_found"],
    [
      new Error("failed to lookup address information: No address associated with hostname"),
      "dns_not_found",
    ],
    [
      new Error("failed to lookup address information: Temporary failure in name resolution"),
      "dns_timeout",
    ],
    [new Deno.errors.ConnectionReset("Connection reset by peer (os error 104)"), ""],
    [new Error("something else"), ""],
    ["a string", ""],
  ];
  for (const [err, want] of cases) assert.equal(classifyDialError(err), want, String(err));
});

Deno.test("classifyDialError: a quick EAI_AGAIN is dns_not_found, a slow one dns_timeout", () => {
  const again = new Error(
    "failed to lookup address information: Temporary failure in name resolution",
  );
  assert.equal(classifyDialError(again, 15), "dns_not_found");
  assert.equal(classifyDialError(again, DNS_TIMEOUT_MIN_MS - 1), "dns_not_found");
  assert.equal(classifyDialError(again, DNS_TIMEOUT_MIN_MS), "dns_timeout");
  assert.equal(classifyDialError(again, 10_000), "dns_timeout");
  // A resolver that says it timed out did, however fast the error came.
  assert.equal(classifyDialError(new Error("dns error: request timed out"), 5), "dns_timeout");
  const unknown = new Error("failed to lookup address information: Name or service not known");
  assert.equal(classifyDialError(unknown, 10_000), "dns_not_found");
});

Deno.test("rejectHint: every listener code says what happened; host names are literal", () => {
  const codes = [
    "connection_refused",
    "host_unreachable",
    "network_unreachable",
    "timeout",
    "dns_not_found",
    "dns_timeout",
    "not_allowed",
  ];
  for (const code of codes) assert.match(rejectHint(code) ?? "", /^the /, code);
  assert.match(rejectHint("connection_refused")!, /nothing listens on that port/);
  assert.match(rejectHint("dns_not_found")!, /could not resolve/);
  assert.match(rejectHint("timeout")!, /timed out/);
  assert.match(rejectHint("not_allowed")!, /--allow list; host names are matched literally/);
  for (const none of [undefined, "", "something_new", "constructor", "toString"]) {
    assert.equal(rejectHint(none), undefined, String(none));
  }
});
