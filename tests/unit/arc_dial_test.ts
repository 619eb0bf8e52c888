import assert from "node:assert/strict";
import { type ArcDialOptions, arcRelayUrl, dialArcRelay } from "../../lib/arc/dial.ts";
import type { ArcRelayCredentials } from "../../lib/arc/hybrid_connectivity.ts";
import { getLogger } from "../../lib/observe/log.ts";
import type { WsConnectOptions } from "../../lib/ws/client.ts";
import type { WebSocketConn } from "../../lib/ws/conn.ts";
import { WsError, WsHandshakeError } from "../../lib/ws/errors.ts";
import { withLogs } from "../helpers/logs.ts";

const CREDS: ArcRelayCredentials = {
  namespaceName: "azgnrelay-eastus-l1",
  namespaceNameSuffix: "servicebus.windows.net",
  hybridConnectionName: "microsoft.hybridcompute/machines/abc",
  accessKey: "SharedAccessSignature sr=x&sig=secret-signature&se=1&skn=k",
  expiresOn: 0,
  serviceConfigurationToken: "service-config-token-secret",
};

const CONN = { fake: true } as unknown as WebSocketConn;
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/;

function status(n: number): WsHandshakeError {
  return new WsHandshakeError(`HTTP ${n}`, {
    status: n,
    statusText: n === 404 ? "Not Found" : "x",
    headers: new Headers(),
    body: "",
  });
}

interface Call {
  url: string;
  opts: WsConnectOptions;
}

/**
 * A scripted dial: each entry fails with that status (or error) or, for "ok", connects. The clock
 * advances `stepMs` per attempt, so progress logging can be checked without waiting.
 */
function script(outcomes: Array<number | "ok" | Error>, stepMs = 0) {
  let t = 1_000_000;
  const calls: Call[] = [];
  const connect = (url: string, opts: WsConnectOptions) => {
    calls.push({ url, opts });
    t += stepMs;
    const next = outcomes.shift();
    if (next === undefined) throw new Error("script exhausted");
    if (next === "ok") return Promise.resolve(CONN);
    return Promise.reject(typeof next === "number" ? status(next) : next);
  };
  return { calls, connect, now: () => t };
}

function dial(s: ReturnType<typeof script>, extra: Partial<ArcDialOptions> = {}) {
  return dialArcRelay({
    creds: CREDS,
    port: 2222,
    logger: getLogger(),
    explain: false,
    timing: { backoffMs: [0] },
    connect: s.connect,
    now: s.now,
    ...extra,
  });
}

const infos = (lines: string[]) => lines.filter((l) => l.includes("level=INFO"));

Deno.test("arc dial: URL, the three headers, a fresh sb-hc-id per attempt, 30 s attempts", async () => {
  const s = script([404, "ok"]);
  assert.equal(await dial(s), CONN);
  const [a, b] = s.calls;
  const re = new RegExp(
    `^wss://azgnrelay-eastus-l1\\.servicebus\\.windows\\.net/\\$hc/microsoft\\.hybridcompute/machines/abc\\?sb-hc-action=connect&sb-hc-id=${UUID.source}$`,
  );
  assert.match(a.url, re);
  assert.match(b.url, re);
  assert.notEqual(a.url, b.url);
  assert.deepEqual(a.opts.headers, {
    "Servicebusauthorization": CREDS.accessKey,
    "Service-Configuration-Token": CREDS.serviceConfigurationToken,
    "Microsoft-Guestgateway-Target": "localhost:2222",
  });
  assert.equal(a.opts.timeoutMs, 30_000);
  assert.ok(!a.url.includes("sb-hc-token"));
});

Deno.test("arc dial: AZTUNNEL_ARC_RELAY_URL replaces only scheme and host", () => {
  const url = arcRelayUrl(CREDS, { scheme: "ws", host: "127.0.0.1:8080" }, "id-1");
  assert.equal(
    url,
    "ws://127.0.0.1:8080/$hc/microsoft.hybridcompute/machines/abc?sb-hc-action=connect&sb-hc-id=id-1",
  );
});

Deno.test("arc dial: 404 and 503 are retried, then it connects", async () => {
  const s = script([404, 503, 404, "ok"]);
  assert.equal(await dial(s), CONN);
  assert.equal(s.calls.length, 4);
});

Deno.test("arc dial: 401 and other failures are not retried, secrets stay out", async () => {
  await assert.rejects(dial(script([401])), (e: Error & { code?: string; status?: number }) => {
    assert.equal(e.code, "auth_failed");
    assert.equal(e.status, 401);
    assert.match(e.message, /^dial arc relay: HTTP 401 x: the relay refused the Arc credentials/);
    return true;
  });
  await assert.rejects(dial(script([500])), { code: "rejected" });
  const leaky = new WsError(
    "connect_failed",
    `proxy said: Servicebusauthorization: ${CREDS.accessKey}`,
  );
  await assert.rejects(dial(script([leaky])), (e: Error & { code?: string }) => {
    assert.equal(e.code, "relay_failed");
    assert.ok(!e.message.includes("secret-signature"), e.message);
    return true;
  });
  const stalled = new WsError("handshake_timeout", "no answer");
  const s = script([stalled, "ok"]);
  await assert.rejects(dial(s), { code: "relay_failed" });
  assert.equal(s.calls.length, 1);
});

Deno.test("arc dial: cancelling mid-retry gives the enriched gave-up error", async () => {
  const ac = new AbortController();
  const s = script([404, 404], 1500);
  const connect = (url: string, opts: WsConnectOptions) => {
    const p = s.connect(url, opts);
    // Abort while the second attempt's failure is being handled: the backoff wait is cut short.
    if (s.calls.length === 2) p.catch(() => ac.abort(new Error("interrupted")));
    return p;
  };
  await assert.rejects(
    dial(s, { connect, signal: ac.signal, timing: { backoffMs: [0, 60_000] } }),
    {
      code: "aborted",
      message: "dial arc relay: gave up after 2 attempt(s) in 3s (last status 404): interrupted",
    },
  );
});

Deno.test("arc dial explain mode: INFO at the first retry, every 15 s, connected at INFO", async () => {
  const s = script([404, 404, 404, 404, 404, "ok"], 5000);
  const lines = await withLogs((lines) => dial(s, { explain: true }).then(() => lines));
  const info = infos(lines);
  assert.equal(info.length, 3, info.join(""));
  assert.match(
    info[0],
    /msg="waiting for Arc agent to register a relay listener \(expected after creating or updating the HybridConnectivity configuration\)" status=404/,
  );
  assert.match(
    info[1],
    /msg="still waiting for Arc agent to register a relay listener" elapsed=20s attempts=4/,
  );
  assert.match(info[2], /msg="arc relay connected" elapsed=30s attempts=6 lastStatus=404/);
});

Deno.test("arc dial normal mode: quiet for 30 s, then every 15 s with lastStatus", async () => {
  const s = script([503, 503, 503, 503, 503, 503, 503, 503, 503, "ok"], 5000);
  const lines = await withLogs((lines) => dial(s).then(() => lines));
  const info = infos(lines);
  assert.deepEqual(
    info.map((l) => /msg="([^"]+)"/.exec(l)?.[1]),
    [
      "still waiting for arc relay listener",
      "still waiting for arc relay listener",
      "arc relay connected",
    ],
  );
  assert.match(info[0], /elapsed=30s attempts=6 lastStatus=503/);
  assert.match(info[1], /elapsed=45s attempts=9 lastStatus=503/);
});

Deno.test("arc dial normal mode: a quick success is logged at DEBUG only", async () => {
  const lines = await withLogs((lines) => dial(script([404, "ok"], 1000)).then(() => lines));
  assert.equal(infos(lines).length, 0);
  assert.ok(
    lines.some((l) =>
      /level=DEBUG msg="arc relay connected" elapsed=2s attempts=2 lastStatus=404/.test(l)
    ),
  );
});
