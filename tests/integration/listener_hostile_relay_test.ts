/**
 * The listener against a relay that hands out hostile commands (issue 8 §2–3): nothing it should
 * not trust is dialled (canaries see no connection), HTTP requests get 501, envelopes are small.
 */
import assert from "node:assert/strict";
import { runListener } from "../../lib/listener/service.ts";
import { SasTokenProvider } from "../../lib/relay/token.ts";
import { parseAllowlist } from "../../lib/tunnel/allowlist.ts";
import { encodeEnvelope } from "../../lib/tunnel/envelope.ts";
import { getLogger } from "../../lib/observe/log.ts";
import { makeTestCerts, opensslAvailable } from "../helpers/certs.ts";
import { within } from "../helpers/fake_relay.ts";
import { captureLogs } from "../helpers/logs.ts";
import {
  acceptJson,
  type HostileRelay,
  type Rendezvous,
  requestJson,
  startCanary,
  startHostileRelay,
} from "../helpers/hostile_relay.ts";

const RESPONSE_501 = (id: string) =>
  `{"response":{"requestId":"${id}","statusCode":501,` +
  `"statusDescription":"this listener serves only WebSocket tunnels","responseHeaders":{},` +
  `"body":false}}`;
const enc = new TextEncoder();

function listen(relay: HostileRelay, extra: Partial<Parameters<typeof runListener>[0]> = {}) {
  const ac = new AbortController();
  const done = runListener({
    endpoint: relay.endpoint,
    entity: "hc",
    tokens: new SasTokenProvider("listen", "key"),
    allowlist: parseAllowlist(["127.0.0.1:1"]),
    signal: ac.signal,
    drainTimeoutMs: 1000,
    logger: getLogger(),
    controlChannel: { reconnectBaseMs: 10 },
    ...extra,
  });
  return {
    done,
    stop: async () => {
      ac.abort();
      await within(done, 8000, "listener to stop");
    },
  };
}

/** Plays the sender on a rendezvous: sends `envelope`, returns the answer, waits for the close. */
async function exchange(r: Rendezvous, envelope: string): Promise<string | null> {
  await r.ws.send(envelope);
  const answer = await r.ws.receive().catch(() => null);
  while (await r.ws.receive().catch(() => null) !== null) continue;
  await r.ws.close().catch(() => {});
  await r.ws.closed;
  return answer?.type === "text" ? answer.data : null;
}

Deno.test("listener: binary frames, foreign accept addresses and HTTP requests dial nothing", async () => {
  await using logs = await captureLogs();
  // 127.0.0.1:port is the relay's host on another port; localhost is another name for it;
  // 127.0.0.3 is a host the relay does not own.
  await using canary = startCanary(["127.0.0.1", "127.0.0.3", "::1"]);
  await using relay = startHostileRelay();
  const listener = listen(relay);
  const ctrl = await relay.nextControl();

  const hostile = [
    `ws://127.0.0.1:${canary.port}/$hc/hc?sb-hc-action=accept&sb-hc-id=a1`,
    `ws://localhost:${canary.port}/$hc/hc?sb-hc-action=accept&sb-hc-id=a2`,
    `ws://127.0.0.3:${canary.port}/$hc/hc?sb-hc-action=accept&sb-hc-id=a3`,
    `ws://localhost:${relay.port}/$hc/hc?sb-hc-action=accept&sb-hc-id=a4`,
  ];
  // A BINARY frame is a request body, never a command: not even an address on the relay is taken.
  await ctrl.ws.send(enc.encode(acceptJson(relay.address("accept", "bin1"))));
  await ctrl.ws.send(enc.encode(acceptJson(hostile[0])));
  for (const address of hostile) await ctrl.ws.send(acceptJson(address));

  // An HTTP request with its body on the control channel: answered there, body skipped.
  await ctrl.ws.send(requestJson(relay.address("request", "req1"), "req1", true));
  await ctrl.ws.send(enc.encode(acceptJson(hostile[0])));
  await ctrl.ws.send(enc.encode("x".repeat(1000)));
  assert.equal(await ctrl.nextText(), RESPONSE_501("req1"));
  // A request on a foreign rendezvous is refused; one on the relay's own is answered there.
  await ctrl.ws.send(requestJson(hostile[2].replace("accept", "request"), "req2"));
  await ctrl.ws.send(requestJson(relay.address("request", "req3"), "req3"));
  const req = await relay.nextRendezvous();
  assert.equal(req.action, "request");
  const answer = await req.ws.receive();
  assert.deepEqual(answer, { type: "text", data: RESPONSE_501("req3") });
  assert.equal(await req.ws.receive(), null);
  assert.equal(req.ws.closeInfo?.code, 1000);
  await req.ws.close();

  // The channel still works: a TEXT accept for the relay's own address is dialled.
  await ctrl.ws.send(acceptJson(relay.address("accept", "ok1")));
  const r = await relay.nextRendezvous();
  assert.equal(r.action, "accept");
  const res = await exchange(r, encodeEnvelope({ version: 1, target: "127.0.0.2:9" }));
  assert.match(res ?? "", /"error":"target not allowed"/);
  assert.equal(relay.pendingRendezvous, 0);
  assert.equal(canary.hits, 0);

  await listener.stop();
  await ctrl.ended;
  assert.equal(canary.hits, 0);
  assert.equal(relay.pendingRendezvous, 0);

  const refused = logs.lines.filter((l) => /msg=accept_dropped/.test(l));
  assert.equal(refused.length, hostile.length);
  for (const l of refused) assert.match(l, /level=WARN .*reason=address_refused/);
  assert.match(refused[0], /error="accept address refused: port \d+ is not the relay's port \d+"/);
  assert.match(refused[1], /host localhost is neither the relay's host 127\.0\.0\.1/);
  assert.match(refused[2], /host 127\.0\.0\.3 is neither the relay's host 127\.0\.0\.1/);
  assert.match(refused[3], /host localhost is neither/);
  assert.equal(logs.count(/msg="request rendezvous refused"/), 1);
  assert.equal(logs.count([/level=DEBUG/, /msg="binary control frame ignored"/]), 4);
  assert.equal(logs.count(/level=WARN.*invalid control message/), 0);
  assert.equal(logs.count([/level=INFO/, /msg="http request refused"/, /status=501/]), 3);
});

Deno.test({
  name: "listener: a wss:// relay's ws:// accept address is refused even for a named host",
  ignore: !opensslAvailable,
  fn: async () => {
    await using logs = await captureLogs();
    await using certs = await makeTestCerts();
    await using canary = startCanary(["127.0.0.4"]);
    await using relay = startHostileRelay({ tls: { cert: certs.cert, key: certs.key } });
    const listener = listen(relay, {
      caCerts: [certs.ca],
      acceptHosts: [`127.0.0.4:${canary.port}`],
    });
    const ctrl = await relay.nextControl();
    await ctrl.ws.send(acceptJson(`ws://127.0.0.4:${canary.port}/$hc/hc?sb-hc-action=accept`));
    await ctrl.ws.send(acceptJson(relay.address("accept", "ok1")));
    const r = await relay.nextRendezvous();
    assert.match(
      await exchange(r, encodeEnvelope({ version: 1, target: "127.0.0.2:9" })) ?? "",
      /target not allowed/,
    );
    await listener.stop();
    await ctrl.ended;
    assert.equal(canary.hits, 0);
    const dropped = await logs.waitFor(/msg=accept_dropped/);
    assert.match(dropped, /scheme ws:\/\/ is not allowed when the relay is wss:\/\//);
  },
});

Deno.test("listener: a --relay-accept-host address is dialled", async () => {
  await using relay = startHostileRelay();
  // The relay's own listener, under a second name the operator vouched for.
  const listener = listen(relay, { acceptHosts: ["localhost"] });
  const ctrl = await relay.nextControl();
  await ctrl.ws.send(
    acceptJson(`ws://localhost:${relay.port}/$hc/hc?sb-hc-action=accept&sb-hc-id=x`),
  );
  const r = await relay.nextRendezvous();
  assert.match(
    await exchange(r, encodeEnvelope({ version: 1, target: "127.0.0.2:9" })) ?? "",
    /target not allowed/,
  );
  await listener.stop();
  await ctrl.ended;
});

Deno.test("listener: envelopes over 32 KiB close with 1009; long targets are cut in logs", async () => {
  await using logs = await captureLogs();
  await using relay = startHostileRelay();
  const listener = listen(relay);
  const ctrl = await relay.nextControl();

  await ctrl.ws.send(acceptJson(relay.address("accept", "big")));
  const big = await relay.nextRendezvous();
  const target = "t".repeat(40_000) + ":22";
  await big.ws.send(encodeEnvelope({ version: 1, target }));
  assert.equal(await big.ws.receive().catch(() => null), null);
  assert.equal(big.ws.closeInfo?.code, 1009);
  await big.ws.close().catch(() => {});
  await big.ws.closed;
  await logs.waitFor([/level=WARN/, /msg="failed to read envelope"/]);

  // Exactly 32768 bytes is read; its target goes into each log line cut short.
  await ctrl.ws.send(acceptJson(relay.address("accept", "edge")));
  const edge = await relay.nextRendezvous();
  const pad = 32768 - encodeEnvelope({ version: 1, target: ":22" }).length;
  const edgeTarget = "e".repeat(pad) + ":22";
  const envelope = encodeEnvelope({ version: 1, target: edgeTarget });
  assert.equal(envelope.length, 32768);
  assert.match(await exchange(edge, envelope) ?? "", /target not allowed/);

  // Go refuses a version written 1.0 or 1e0.
  for (const v of ["1.0", "1e0"]) {
    await ctrl.ws.send(acceptJson(relay.address("accept", "v")));
    const r = await relay.nextRendezvous();
    assert.equal(
      await exchange(r, `{"version":${v},"target":"127.0.0.1:1"}`),
      `{"version":1,"ok":false,"error":"invalid envelope","listener_id":${
        JSON.stringify(/listener_id=([A-Z2-7]{16})/.exec(logs.lines.join("\n"))![1])
      }}`,
    );
  }
  await listener.stop();
  await ctrl.ended;

  const cut = `${"e".repeat(256)}… (${edgeTarget.length} chars)`;
  const withCut = (msg: RegExp) =>
    logs.lines.filter((l) => msg.test(l) && l.includes(`target="${cut}"`)).length;
  assert.equal(withCut(/msg="connection requested"/), 1);
  assert.equal(withCut(/msg="target not allowed"/), 1);
  assert.equal(logs.count(/msg="invalid envelope"/), 2);
  for (const l of logs.lines) assert.ok(l.length < 2000, `log line of ${l.length} chars`);
});
