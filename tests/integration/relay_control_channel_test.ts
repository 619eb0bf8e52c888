import assert from "node:assert/strict";
import {
  type AcceptContext,
  type AcceptMessage,
  type ControlChannelOptions,
  runControlChannel,
} from "../../lib/relay/control_channel.ts";
import { createEntraTokenProvider } from "../../lib/relay/entra.ts";
import { parseSasToken, verifySasSignature } from "../../lib/relay/sas.ts";
import { SasTokenProvider, type Token, type TokenProvider } from "../../lib/relay/token.ts";
import { getLogger } from "../../lib/observe/log.ts";
import type { WebSocketConn } from "../../lib/ws/conn.ts";
import type { IncomingRequest } from "../../lib/ws/server.ts";
import { captureLogs } from "../helpers/logs.ts";
import {
  type Deferred,
  deferred,
  type FakeRelay,
  startFakeRelay,
  within,
} from "../helpers/fake_relay.ts";

const KEY = "listen-secret-key";
const ID = /^[A-Z2-7]{16}$/;

/** A relay that upgrades (or refuses, when `refuse` returns a status) and hands out the sockets. */
function socketRelay(refuse?: (i: number) => number | undefined) {
  const sockets: Deferred<WebSocketConn>[] = [];
  const slot = (i: number) => (sockets[i] ??= deferred<WebSocketConn>());
  const relay = startFakeRelay(async (req: IncomingRequest, _seen, i) => {
    const status = refuse?.(i);
    if (status !== undefined) return req.respond(status);
    slot(i).resolve(await req.upgrade());
  });
  return { relay, socket: (i: number) => within(slot(i).promise, 5000, `control socket ${i}`) };
}

/** Plays a relay that answers pings until the client closes, then completes the close. */
async function serve(ws: WebSocketConn, onText?: (t: string) => void): Promise<void> {
  for (let m = await ws.receive().catch(() => null); m; m = await ws.receive().catch(() => null)) {
    if (m.type === "text") onText?.(m.data);
  }
  await ws.close().catch(() => {});
}

interface Running extends AsyncDisposable {
  readonly ac: AbortController;
  readonly done: Promise<void>;
  readonly accepts: [AcceptMessage, AcceptContext][];
  readonly ups: boolean[];
  readonly nextAccept: () => Promise<[AcceptMessage, AcceptContext]>;
  stop(): Promise<void>;
}

function start(relay: FakeRelay, extra: Partial<ControlChannelOptions> = {}): Running {
  const ac = new AbortController();
  const accepts: [AcceptMessage, AcceptContext][] = [];
  const ups: boolean[] = [];
  let waiting: Deferred<[AcceptMessage, AcceptContext]> | undefined;
  const stop = async () => {
    ac.abort();
    await within(done, 8000, "runControlChannel to stop");
  };
  const done = runControlChannel({
    endpoint: relay.endpoint,
    entity: "hc",
    tokens: new SasTokenProvider("listen", KEY),
    logger: getLogger({ listener_id: "LISTENERID" }),
    signal: ac.signal,
    onAccept: (a, ctx) => {
      accepts.push([a, ctx]);
      waiting?.resolve([a, ctx]);
    },
    onConnectedChange: (up) => ups.push(up),
    reconnectBaseMs: 10,
    ...extra,
  });
  return {
    ac,
    done,
    accepts,
    ups,
    nextAccept: () => within((waiting = deferred()).promise, 5000, "accept"),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** An accept on the relay's own host and port: the only address a listener dials by default. */
const acceptFor = (relay: FakeRelay) => ({
  accept: {
    address: `ws://127.0.0.1:${relay.port}/$hc/hc?sb-hc-action=accept&sb-hc-id=abc_G1`,
    id: "abc_G1",
    connectHeaders: { "Sec-WebSocket-Key": "NsoFiXBuR3i2nE8Tx0+maA==", Host: "ns:443" },
    remoteEndpoint: { address: "203.0.113.7", port: 62917 },
  },
});

Deno.test("control channel registers, delivers accepts with ids and closes cleanly", async () => {
  await using logs = await captureLogs();
  const { relay, socket } = socketRelay();
  await using _relay = relay;
  await using run = start(relay);
  const ws = await socket(0);

  const seen = relay.requests[0];
  assert.equal(seen.path, "/$hc/hc");
  assert.equal(seen.action, "listen");
  const fields = parseSasToken(seen.token!)!;
  assert.equal(await verifySasSignature(fields, KEY), true);
  assert.equal(fields.skn, "listen");

  const started = await logs.waitFor(/msg=control_started/);
  assert.match(started, new RegExp(`relay_url=ws://127\\.0\\.0\\.1:${relay.port} `));
  assert.match(started, /listener_name=hc/);
  assert.match(started, /listener_id=LISTENERID/);
  const session = /control_session_id=([A-Z2-7]{16})/.exec(started)![1];
  assert.deepEqual(run.ups, [true]);

  // Junk and unknown commands are survived; only accept is acted on.
  await ws.send("this is not json");
  await ws.send(JSON.stringify({ request: { address: "wss://x", id: "r1" } }));
  await ws.send(JSON.stringify({ injectFault: {} }));
  await ws.send("null");
  const ACCEPT = acceptFor(relay);
  // A BINARY frame is never a command (on Azure it is an HTTP request body).
  await ws.send(new TextEncoder().encode(JSON.stringify(ACCEPT)));
  const next = run.nextAccept();
  await ws.send(JSON.stringify(ACCEPT));
  const [accept, ctx] = await next;
  assert.deepEqual(accept, ACCEPT.accept);
  assert.equal(logs.count([/level=DEBUG/, /msg="binary control frame ignored"/]), 1);
  assert.match(ctx.acceptId, ID);
  assert.equal(ctx.sessionSignal.aborted, false);
  assert.equal(run.accepts.length, 1);

  const invalid = await logs.waitFor([/level=WARN/, /msg="invalid control message"/]);
  assert.match(invalid, new RegExp(`control_session_id=${session}`));
  assert.match(invalid, /error=/);
  assert.equal(logs.count(/invalid control message/), 1);
  const attempted = await logs.waitFor(/msg=accept_attempted/);
  assert.match(attempted, new RegExp(`accept_id=${ctx.acceptId}`));
  assert.match(attempted, new RegExp(`control_session_id=${session}`));
  assert.match(attempted, /listener_id=LISTENERID/);
  ctx.logger.info("probe");
  assert.match(await logs.waitFor(/msg=probe/), new RegExp(`accept_id=${ctx.acceptId}`));

  // Shutdown: the relay sees a clean 1000 close, the session signal fires.
  const closing = serve(ws);
  await run.stop();
  await closing;
  assert.equal(ws.closeInfo?.code, 1000);
  assert.equal(ctx.sessionSignal.aborted, true);
  assert.deepEqual(run.ups, [true, false]);
  const ended = await logs.waitFor(/msg=control_ended/);
  assert.match(ended, /reason=context_cancelled/);
  assert.match(ended, /duration_seconds=\d/);
  assert.equal(logs.count(/reconnecting/), 0);
  for (const l of logs.lines) {
    assert.doesNotMatch(l, /sb-hc-token=(?!REDACTED)/);
    assert.doesNotMatch(l, new RegExp(KEY));
  }
});

/** Tokens that expire `lifetimeMs` after minting, signed with KEY, optionally failing after `okCalls`. */
function shortTokens(lifetimeMs: number, okCalls = Infinity): TokenProvider & { calls: number } {
  const sas = new SasTokenProvider("listen", KEY);
  return {
    kind: "sas",
    calls: 0,
    async getToken(uri: string, signal?: AbortSignal): Promise<Token> {
      if (++this.calls > okCalls) throw new Error("identity endpoint down");
      const t = await sas.getToken(uri, signal);
      return { token: t.token, expiresAt: Date.now() + lifetimeMs };
    },
  };
}

Deno.test("control channel sends renewToken before the token expires", async () => {
  await using logs = await captureLogs();
  const { relay, socket } = socketRelay();
  await using _relay = relay;
  const tokens = shortTokens(400);
  await using run = start(relay, { tokens, renewBeforeMs: 300 });
  const ws = await socket(0);
  const renewals: string[] = [];
  const two = deferred();
  const serving = serve(ws, (t) => {
    renewals.push(t);
    if (renewals.length === 2) two.resolve();
  });
  await within(two.promise, 5000, "two renewToken messages");
  for (const text of renewals) {
    const msg = JSON.parse(text) as { renewToken: { token: string } };
    assert.deepEqual(Object.keys(msg), ["renewToken"]);
    const fields = parseSasToken(msg.renewToken.token)!;
    assert.equal(await verifySasSignature(fields, KEY), true);
  }
  await logs.waitFor([/msg=renew_attempted/, /attempt=1/, /expires_in_seconds=0/]);
  const ok = await logs.waitFor([/msg=renew_ok/, /attempt=1/]);
  assert.match(ok, /new_expires_in_seconds=0 /);
  assert.match(ok, /elapsed_ms=\d+/);
  assert.match(ok, /control_session_id=[A-Z2-7]{16}/);
  assert.equal(relay.requests.length, 1, "renewing never reconnects");
  await run.stop();
  await serving;
});

Deno.test("control channel ends the session when renewing keeps failing", async () => {
  await using logs = await captureLogs();
  const { relay, socket } = socketRelay();
  await using _relay = relay;
  const tokens = shortTokens(300, 1);
  await using run = start(relay, { tokens, renewBeforeMs: 250, renewRetryDelaysMs: [5, 5] });
  const serving = serve(await socket(0));
  await logs.waitFor([/msg=control_ended/, /reason=renew_failed/]);
  for (const attempt of [1, 2, 3]) {
    const line = await logs.waitFor([/msg=renew_failed/, new RegExp(`attempt=${attempt} `)]);
    assert.match(line, /code=token_fetch_failed/);
    assert.match(line, /error="get token: identity endpoint down"/);
  }
  await serving; // the relay saw the channel go away
  await logs.waitFor([/msg=control_ended/, /reason=token_fetch_failed/]);
  await logs.waitFor(/control channel disconnected, reconnecting/);
  await run.stop();
});

Deno.test("control channel reconnects when pongs stop coming", async () => {
  await using logs = await captureLogs();
  const { relay, socket } = socketRelay();
  await using _relay = relay;
  await using run = start(relay, { pingIntervalMs: 30, pongTimeoutMs: 60 });
  await socket(0); // never read: pings go unanswered
  const ended = await logs.waitFor([/msg=control_ended/, /reason=ping_failed/]);
  assert.match(ended, /error="ping: /);
  const warn = await logs.waitFor([/level=WARN/, /control channel disconnected, reconnecting/]);
  assert.match(warn, /delay=\d+ms/);
  assert.doesNotMatch(warn, /control_session_id/);
  const serving = serve(await socket(1)); // this relay answers pings
  await logs.waitFor([/msg=control_started/], 5000, 2);
  assert.deepEqual(run.ups, [true, false, true]);
  await run.stop();
  await serving;
  assert.equal(logs.count([/msg=control_ended/, /reason=ping_failed/]), 1);
});

Deno.test("control channel reconnects after the relay closes it, and accepts lose their session", async () => {
  await using logs = await captureLogs();
  const { relay, socket } = socketRelay();
  await using _relay = relay;
  await using run = start(relay);
  const ws0 = await socket(0);
  const next = run.nextAccept();
  await ws0.send(JSON.stringify(acceptFor(relay)));
  const [, ctx] = await next;
  await ws0.close(1011, "NameRenewalFailed");
  const ended = await logs.waitFor([/msg=control_ended/, /reason=read_failed/]);
  assert.match(ended, /error="control channel closed by relay \(1011 NameRenewalFailed\)"/);
  assert.equal(ctx.sessionSignal.aborted, true);
  const warn = await logs.waitFor(/control channel disconnected, reconnecting/);
  const delay = Number(/delay=(\d+)ms/.exec(warn)![1]);
  assert.ok(delay >= 8 && delay <= 12, `delay ${delay}`);
  const serving = serve(await socket(1));
  const sessionOf = (l: string) => /control_session_id=(\w+)/.exec(l)![1];
  const first = await logs.waitFor(/msg=control_started/, 5000, 1);
  const second = await logs.waitFor(/msg=control_started/, 5000, 2);
  assert.notEqual(sessionOf(first), sessionOf(second), "a new control_session_id per session");
  assert.deepEqual(run.ups, [true, false, true]);
  await run.stop();
  await serving;
});

Deno.test("control channel backs off on refusals and resets after a long session", async () => {
  await using logs = await captureLogs();
  const long = deferred();
  const { relay, socket } = socketRelay((i) => (i === 3 ? undefined : 401));
  await using _relay = relay;
  await using run = start(relay, {
    reconnectBaseMs: 20,
    reconnectMaxMs: 1000,
    reconnectResetMs: 100,
  });
  const ws = await socket(3);
  const timer = setTimeout(() => long.resolve(), 150);
  await long.promise;
  clearTimeout(timer);
  const closing = ws.close(1001, "going away");
  await relay.waitForRequests(5);
  await closing;
  await logs.waitFor(/control channel disconnected, reconnecting/);
  const auth = await logs.waitFor([/msg=control_ended/, /reason=auth_failed/]);
  assert.match(
    auth,
    /error="relay refused the credentials \(HTTP 401\): check AZTUNNEL_KEY_NAME\/AZTUNNEL_KEY and that the policy grants Listen"/,
  );
  const delays = logs.lines.filter((l) => /reconnecting/.test(l))
    .map((l) => Number(/delay=(\d+)ms/.exec(l)![1]));
  // 20, 40, 80 (±20 %) while refused; back to 20 after the session that lived ≥ 100 ms.
  const within20 = (d: number, nominal: number) => d >= nominal * 0.8 && d <= nominal * 1.2;
  assert.ok(within20(delays[0], 20), String(delays));
  assert.ok(within20(delays[1], 40), String(delays));
  assert.ok(within20(delays[2], 80), String(delays));
  assert.ok(within20(delays[3], 20), String(delays));
  await run.stop();
});

Deno.test("control channel explains a token failure once per distinct error, then logs it short", async () => {
  await using logs = await captureLogs();
  const { relay } = socketRelay();
  await using _relay = relay;
  let calls = 0;
  const tokens = createEntraTokenProvider({
    credential: {
      getToken: () =>
        Promise.reject(new Error(++calls <= 3 ? "endpoint down" : "endpoint returned 500")),
    },
  });
  await using run = start(relay, { tokens, reconnectBaseMs: 1, reconnectMaxMs: 4 });
  const reconnecting = /msg="control channel disconnected, reconnecting"/;
  const warns: string[] = [];
  for (let n = 1; n <= 5; n++) warns.push(await logs.waitFor(reconnecting, 5000, n));
  await run.stop();

  const SHORT =
    'error="get token: Entra ID authentication failed: no credential could get a token for https://relay.azure.net/.default"';
  const isShort = (line: string) => line.trimEnd().endsWith(SHORT) || line.includes(`${SHORT} `);
  const full = (why: string) =>
    'error="get token: Entra ID authentication failed: no credential could get a token for ' +
    `https://relay.azure.net/.default (${why}); to fix: set AZTUNNEL_KEY_NAME and AZTUNNEL_KEY`;
  assert.ok(warns[0].includes(full("endpoint down")), warns[0]);
  assert.ok(isShort(warns[1]), warns[1]);
  assert.ok(isShort(warns[2]), warns[2]);
  assert.ok(warns[3].includes(full("endpoint returned 500")), warns[3]);
  assert.ok(isShort(warns[4]), warns[4]);
  const ended = logs.lines.filter((l) => /msg=control_ended .*reason=token_fetch_failed/.test(l));
  assert.ok(ended.length >= 5, String(ended.length));
  for (const line of ended) assert.ok(isShort(line), line);
  assert.equal(logs.count(/to fix:/), 2);
});
