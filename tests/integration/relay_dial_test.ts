import assert from "node:assert/strict";
import { dialRelay } from "../../lib/relay/dial.ts";
import { errorSummary, RelayDialError } from "../../lib/relay/dial_error.ts";
import { createEntraTokenProvider } from "../../lib/relay/entra.ts";
import { parseSasToken, verifySasSignature } from "../../lib/relay/sas.ts";
import { SasTokenProvider, type Token, type TokenProvider } from "../../lib/relay/token.ts";
import { getLogger } from "../../lib/observe/log.ts";
import { deferred, startFakeRelay, within } from "../helpers/fake_relay.ts";
import { captureLogs } from "../helpers/logs.ts";

const KEY = "sender-secret-key";
const sas = () => new SasTokenProvider("send", KEY);
const fast = { retryBaseMs: 10, retryMaxMs: 40 };

function isDialError(code: string) {
  return (err: unknown) => {
    assert.ok(err instanceof RelayDialError, String(err));
    assert.equal(err.code, code, err.message);
    return true;
  };
}

/** A token provider that counts calls and can fail on demand. */
function countingTokens(fail = false): TokenProvider & { calls: number } {
  const inner = sas();
  return {
    kind: "sas",
    calls: 0,
    getToken(uri: string, signal?: AbortSignal): Promise<Token> {
      this.calls++;
      if (fail) return Promise.reject(new Error("token endpoint unreachable"));
      return inner.getToken(uri, signal);
    },
  };
}

Deno.test("dialRelay connects with a valid per-dial SAS token and the escaped path", async () => {
  await using logs = await captureLogs();
  await using relay = startFakeRelay(async (req) => {
    const ws = await req.upgrade();
    for (let m = await ws.receive(); m !== null; m = await ws.receive()) {
      if (m.type === "text") await ws.send(`echo:${m.data}`);
    }
    await ws.close();
  });
  const conn = await dialRelay({
    endpoint: relay.endpoint,
    entity: "my hc",
    tokens: sas(),
    headers: { "X-Test": "1" },
  });
  const seen = relay.requests[0];
  assert.equal(seen.path, "/$hc/my%20hc");
  assert.equal(seen.action, "connect");
  assert.equal(seen.req.headers.get("x-test"), "1");
  const fields = parseSasToken(seen.token!);
  assert.ok(fields);
  // Go QueryEscape: the space in the audience became `+`.
  assert.equal(decodeURIComponent(fields.sr), `https://${relay.endpoint.host}/my+hc`);
  assert.equal(fields.skn, "send");
  assert.equal(await verifySasSignature(fields, KEY), true);
  await conn.send("hi");
  assert.deepEqual(await conn.receive(), { type: "text", data: "echo:hi" });
  await conn.close();
  await logs.waitFor([/level=DEBUG/, /msg="dialing relay"/, /entityPath="my hc"/]);
  await logs.waitFor([/msg="relay connected"/]);
});

Deno.test("dialRelay fails at once on 401 with a clear, secret-free message", async () => {
  await using logs = await captureLogs();
  await using relay = startFakeRelay((req) => req.respond(401, { reason: "Unauthorized" }));
  const tokens = countingTokens();
  await assert.rejects(
    dialRelay({ endpoint: relay.endpoint, entity: "hc", tokens, ...fast }),
    (err: unknown) => {
      isDialError("auth_failed")(err);
      const e = err as RelayDialError;
      assert.equal(e.status, 401);
      assert.equal(
        e.message,
        "relay refused the credentials (HTTP 401): check AZTUNNEL_KEY_NAME/AZTUNNEL_KEY and " +
          "that the policy grants Send",
      );
      return true;
    },
  );
  assert.equal(relay.requests.length, 1);
  assert.equal(tokens.calls, 1);
  const line = await logs.waitFor([/level=WARN/, /msg="relay dial failed"/]);
  assert.match(line, /HTTP 401/);
  assert.equal(logs.count(/retrying/), 0);
  for (const l of logs.lines) {
    assert.doesNotMatch(l, /sb-hc-token=(?!REDACTED)/);
    assert.doesNotMatch(l, new RegExp(KEY));
  }
});

Deno.test("dialRelay 403 with Entra names the Sender role", async () => {
  await using relay = startFakeRelay((req) => req.respond(403));
  const entra: TokenProvider = {
    kind: "entra",
    getToken: () => Promise.resolve({ token: "eyJ.fake.jwt", expiresAt: Date.now() + 3600_000 }),
  };
  await assert.rejects(
    dialRelay({ endpoint: relay.endpoint, entity: "hc", tokens: entra }),
    (err: unknown) => {
      isDialError("auth_failed")(err);
      assert.match(
        (err as Error).message,
        /^relay refused the credentials \(HTTP 403\): check that the identity has the Azure Relay Sender role$/,
      );
      return true;
    },
  );
  assert.equal(relay.requests[0].token, "eyJ.fake.jwt");
});

Deno.test("dialRelay retries 404 and 503 with fresh tokens, then connects", async () => {
  await using logs = await captureLogs();
  await using relay = startFakeRelay(async (req, _seen, i) => {
    if (i === 0) return req.respond(404, { reason: "Endpoint does not exist" });
    if (i === 1) return req.respond(503, { reason: "Service Unavailable" });
    await req.upgrade();
  });
  const tokens = countingTokens();
  const conn = await dialRelay({ endpoint: relay.endpoint, entity: "hc", tokens, ...fast });
  assert.equal(relay.requests.length, 3);
  assert.equal(tokens.calls, 3, "a fresh token per attempt");
  const first = await logs.waitFor([/level=WARN/, /relay dial failed \(retrying\)/, /status=404/]);
  assert.match(first, /delay=10ms/);
  assert.match(first, /error="HTTP 404 Endpoint does not exist"/);
  const second = await logs.waitFor([/retrying/, /status=503/]);
  assert.match(second, /delay=20ms/);
  await logs.waitFor(/msg="relay connected"/);
  conn.closeNow();
  await conn.closed;
});

Deno.test("dialRelay gives up with dial_timeout when the budget runs out", async () => {
  await using logs = await captureLogs();
  await using relay = startFakeRelay((req) => req.respond(404, { reason: "No listener" }));
  const started = performance.now();
  await assert.rejects(
    dialRelay({ endpoint: relay.endpoint, entity: "hc", tokens: sas(), budgetMs: 300, ...fast }),
    (err: unknown) => {
      isDialError("dial_timeout")(err);
      assert.equal(
        (err as Error).message,
        "relay dial timed out after 300ms: HTTP 404 No listener (no listener is connected to " +
          'hybrid connection "hc": check --hyco and that relay-listener runs)',
      );
      return true;
    },
  );
  const took = performance.now() - started;
  assert.ok(took >= 290 && took < 2000, `took ${took} ms`);
  assert.ok(relay.requests.length >= 3, `${relay.requests.length} attempts`);
  await logs.waitFor([/level=WARN/, /msg="relay dial failed"/, /timed out/]);
});

Deno.test("a zero or negative budget means the default, not an instant timeout", async () => {
  await using relay = startFakeRelay(async (req, _seen, i) => {
    if (i % 2 === 0) return req.respond(404);
    await req.upgrade();
  });
  for (const budgetMs of [0, -1]) {
    const conn = await dialRelay({
      endpoint: relay.endpoint,
      entity: "hc",
      tokens: sas(),
      budgetMs,
      attemptTimeoutMs: -5,
      ...fast,
    });
    conn.closeNow();
    await conn.closed;
  }
  assert.equal(relay.requests.length, 4);
});

Deno.test("dialRelay retries a stalled handshake after the attempt deadline", async () => {
  await using logs = await captureLogs();
  const release = deferred();
  await using relay = startFakeRelay(async (req, _seen, i) => {
    if (i === 0) {
      await release.promise; // swallow the GET, answer nothing
      return;
    }
    await req.upgrade();
  });
  try {
    const conn = await dialRelay({
      endpoint: relay.endpoint,
      entity: "hc",
      tokens: sas(),
      attemptTimeoutMs: 150,
      ...fast,
    });
    assert.equal(relay.requests.length, 2);
    const line = await logs.waitFor(/relay dial failed \(retrying\)/);
    assert.doesNotMatch(line, /status=/);
    assert.match(line, /timed out/);
    conn.closeNow();
    await conn.closed;
  } finally {
    release.resolve();
  }
});

Deno.test("dialRelay does not retry other statuses and keeps the listener's reason", async () => {
  await using relay = startFakeRelay((req) => req.respond(418, { reason: "Not allowed here" }));
  await assert.rejects(
    dialRelay({ endpoint: relay.endpoint, entity: "hc", tokens: sas(), ...fast }),
    (err: unknown) => {
      isDialError("rejected")(err);
      const e = err as RelayDialError;
      assert.equal(e.status, 418);
      assert.equal(e.statusText, "Not allowed here");
      assert.equal(e.message, "relay rejected the connection: HTTP 418 Not allowed here");
      return true;
    },
  );
  assert.equal(relay.requests.length, 1);
});

Deno.test("dialRelay fails at once when nothing listens", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  await assert.rejects(
    dialRelay({
      endpoint: { scheme: "ws", host: `127.0.0.1:${port}` },
      entity: "hc",
      tokens: sas(),
      ...fast,
    }),
    (err: unknown) => {
      isDialError("relay_failed")(err);
      assert.match((err as Error).message, /^dial relay: /);
      assert.doesNotMatch((err as Error).message, /sb-hc-token|sb-hc-action|\?/);
      return true;
    },
  );
});

Deno.test("dialRelay reports a token failure without dialing", async () => {
  await using relay = startFakeRelay((req) => req.respond(500));
  await assert.rejects(
    dialRelay({ endpoint: relay.endpoint, entity: "hc", tokens: countingTokens(true) }),
    (err: unknown) => {
      isDialError("relay_failed")(err);
      assert.equal((err as Error).message, "get token: token endpoint unreachable");
      return true;
    },
  );
  assert.equal(relay.requests.length, 0);
});

Deno.test("dialRelay stops quietly when the caller aborts during a backoff", async () => {
  await using logs = await captureLogs();
  await using relay = startFakeRelay((req) => req.respond(404));
  const ac = new AbortController();
  const dial = dialRelay({
    endpoint: relay.endpoint,
    entity: "hc",
    tokens: sas(),
    signal: ac.signal,
    retryBaseMs: 60_000,
    logger: getLogger({ bridge_id: "B" }),
  });
  await logs.waitFor(/retrying/);
  ac.abort();
  await assert.rejects(dial, isDialError("aborted"));
  assert.equal(logs.count(/msg="relay dial failed"/), 0);
  assert.match(logs.lines.find((l) => /retrying/.test(l))!, /bridge_id=B/);
});

Deno.test("the dial budget does not reach an established socket", async () => {
  await using relay = startFakeRelay(async (req) => {
    const ws = await req.upgrade();
    for (;;) {
      const m = await ws.receive();
      if (m === null) return ws.close();
      await ws.send(m.data);
    }
  });
  const conn = await dialRelay({
    endpoint: relay.endpoint,
    entity: "hc",
    tokens: sas(),
    budgetMs: 50,
  });
  // Outlive the budget, then prove the socket still works.
  await new Promise((r) => setTimeout(r, 150));
  await conn.send("still here");
  assert.deepEqual(await within(conn.receive(), 2000, "echo"), {
    type: "text",
    data: "still here",
  });
  await conn.close();
});

Deno.test("dialRelay: a failed Entra token fetch warns short; the error keeps the explanation", async () => {
  await using logs = await captureLogs();
  await using relay = startFakeRelay((req) => req.respond(500));
  const tokens = createEntraTokenProvider({
    credential: { getToken: () => Promise.reject(new Error("identity endpoint down")) },
  });
  const what = "get token: Entra ID authentication failed: no credential could get a token for " +
    "https://relay.azure.net/.default";
  await assert.rejects(
    dialRelay({ endpoint: relay.endpoint, entity: "hc", tokens, ...fast }),
    (err: unknown) => {
      isDialError("relay_failed")(err);
      const e = err as RelayDialError;
      assert.ok(e.message.startsWith(`${what} (identity endpoint down); to fix: `), e.message);
      assert.equal(e.summary, what);
      assert.equal(errorSummary(e), what);
      return true;
    },
  );
  assert.equal(relay.requests.length, 0);
  const line = await logs.waitFor([/level=WARN/, /msg="relay dial failed"/]);
  assert.ok(line.trimEnd().endsWith(`code=relay_failed error="${what}"`), line);
  assert.equal(logs.count(/to fix:/), 0);
});

Deno.test("errorSummary: a summary when there is one, else the first line", () => {
  assert.equal(errorSummary(new Error("one\ntwo")), "one");
  assert.equal(errorSummary("plain text"), "plain text");
  assert.equal(
    errorSummary(new RelayDialError("rejected", "relay rejected the connection: HTTP 400")),
    "relay rejected the connection: HTTP 400",
  );
});
