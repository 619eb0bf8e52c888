import assert from "node:assert/strict";
import { type HandlerConfig, handleTunnel } from "../../lib/listener/handler.ts";
import { parseAllowlist } from "../../lib/tunnel/allowlist.ts";
import { EOF_MESSAGE } from "../../lib/tunnel/bridge.ts";
import { getLogger } from "../../lib/observe/log.ts";
import type { ConnectionErrorReason, TunnelObserver } from "../../lib/tunnel/observer.ts";
import { type FakeSocket, fakeSocketPair } from "../helpers/fake_socket.ts";
import { withLogs } from "../helpers/logs.ts";

const LID = "LISTENER2345ABCD";
const enc = new TextEncoder();
const dec = new TextDecoder();

function config(over: Partial<HandlerConfig> = {}): HandlerConfig {
  return {
    listenerId: LID,
    allowlist: null,
    connectTimeoutMs: 5000,
    keepAlive: true,
    pingIntervalMs: 0,
    ...over,
  };
}

/** Runs the handler on one end of a fake pair; the test drives the other end as the sender. */
function start(cfg: HandlerConfig) {
  const [ws, sender] = fakeSocketPair();
  const done = handleTunnel(ws, cfg, { logger: getLogger({ listener_id: LID }) });
  return { sender, done };
}

/** Sends the envelope, returns the response text, then expects Close 1000 "done". */
async function refused(sender: FakeSocket, envelope: string): Promise<string> {
  await sender.send(envelope);
  const res = await sender.receive();
  assert.equal(res?.type, "text");
  assert.equal(await sender.receive(), null);
  assert.deepEqual(sender.closeInfo, { code: 1000, reason: "done" });
  await sender.close();
  return (res as { data: string }).data;
}

function refusedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  l.close();
  return l.addr.port;
}

Deno.test("listener: check order and error texts, every response carries listener_id", async () => {
  const reasons: ConnectionErrorReason[] = [];
  const observer: TunnelObserver = { connectionError: (_role, r) => reasons.push(r) };
  const allowlist = parseAllowlist(["10.0.0.0/8:*"]);
  const cases: [string, string][] = [
    ["not json", `{"version":1,"ok":false,"error":"invalid envelope","listener_id":"${LID}"}`],
    [
      '{"version":999,"target":"10.0.0.1:22"}',
      `{"version":1,"ok":false,"error":"unsupported protocol version","listener_id":"${LID}"}`,
    ],
    [
      '{"target":"10.0.0.1:22"}',
      `{"version":1,"ok":false,"error":"unsupported protocol version","listener_id":"${LID}"}`,
    ],
    [
      '{"version":1,"target":""}',
      `{"version":1,"ok":false,"error":"missing target","listener_id":"${LID}"}`,
    ],
    [
      '{"version":1,"target":"example.com:22"}',
      `{"version":1,"ok":false,"error":"target not allowed","code":"not_allowed","listener_id":"${LID}"}`,
    ],
  ];
  await withLogs(async (lines) => {
    for (const [envelope, want] of cases) {
      const { sender, done } = start(config({ allowlist, observer }));
      assert.equal(await refused(sender, envelope), want, envelope);
      await done;
    }
    assert.ok(lines.some((l) => l.includes('msg="invalid envelope"')));
    assert.ok(
      lines.some((l) =>
        l.includes('msg="unsupported protocol version" listener_id=' + LID + " version=999")
      ),
    );
    assert.ok(
      lines.some((l) =>
        l.includes('msg="target not allowed"') && l.includes("target=example.com:22")
      ),
    );
  });
  assert.deepEqual(reasons, [
    "envelope_error",
    "envelope_error",
    "envelope_error",
    "envelope_error",
    "allowlist_rejected",
  ]);
});

Deno.test("listener: a refused dial answers connection_refused and logs the code", async () => {
  const port = refusedPort();
  await withLogs(async (lines) => {
    const { sender, done } = start(config());
    const res = await refused(
      sender,
      `{"version":1,"target":"127.0.0.1:${port}","bridge_id":"BRIDGE234567ABCD"}`,
    );
    await done;
    assert.equal(
      res,
      `{"version":1,"ok":false,"error":"connection failed","code":"connection_refused","listener_id":"${LID}"}`,
    );
    const line = lines.find((l) => l.includes('msg="dial target failed"'));
    assert.ok(line);
    assert.match(line, /level=WARN/);
    assert.match(line, / code=connection_refused/);
    assert.match(line, / bridge_id=BRIDGE234567ABCD/);
    assert.match(line, new RegExp(` target=127\\.0\\.0\\.1:${port}`));
    assert.ok(
      lines.some((l) =>
        l.includes('msg="connection requested"') && l.includes("bridge_id=BRIDGE234567ABCD")
      ),
    );
  });
});

Deno.test('listener: an unclassified dial failure logs code="" and sends no code', async () => {
  await withLogs(async (lines) => {
    const { sender, done } = start(config({
      dial: () => Promise.reject(new Error("weird failure")),
    }));
    const res = await refused(sender, '{"version":1,"target":"db:5432"}');
    await done;
    assert.equal(
      res,
      `{"version":1,"ok":false,"error":"connection failed","listener_id":"${LID}"}`,
    );
    assert.ok(lines.some((l) => l.includes('msg="dial target failed"') && l.includes(' code=""')));
  });
});

Deno.test("listener: injected dial errors map to codes and metric reasons", async () => {
  const reasons: ConnectionErrorReason[] = [];
  const cases: [Error, string][] = [
    [new DOMException("late", "TimeoutError") as unknown as Error, "timeout"],
    [new Error("failed to lookup address information: Name or service not known"), "dns_not_found"],
    [
      new Error("failed to lookup address information: Temporary failure in name resolution"),
      "dns_timeout",
    ],
    [new Error("No route to host (os error 113)"), "host_unreachable"],
  ];
  for (const [err, code] of cases) {
    const { sender, done } = start(config({
      dial: () => Promise.reject(err),
      observer: { connectionError: (_role, r) => reasons.push(r) },
    }));
    const res = await refused(sender, '{"version":1,"target":"db:5432"}');
    await done;
    assert.equal(JSON.parse(res).code, code);
  }
  assert.deepEqual(reasons, ["dial_timeout", "dns_not_found", "dns_timeout", "dial_failed"]);
});

Deno.test("listener: no envelope within the connect timeout closes without a response", async () => {
  await withLogs(async (lines) => {
    const { sender, done } = start(config({ connectTimeoutMs: 20 }));
    assert.equal(await sender.receive(), null);
    assert.deepEqual(sender.closeInfo, { code: 1000, reason: "done" });
    await sender.close();
    await done;
    assert.equal(sender.peer.sent.length, 0);
    assert.ok(lines.some((l) => l.includes('msg="failed to read envelope"')));
  });
});

/** A target that echoes what it reads, upper-cased, until EOF, then half-closes. */
function echoTarget() {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    const conn = await l.accept();
    const buf = new Uint8Array(1024);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        await conn.write(enc.encode(dec.decode(buf.subarray(0, n)).toUpperCase()));
      }
      await conn.write(enc.encode("!"));
      await conn.closeWrite();
      while (await conn.read(buf) !== null) { /* until the listener closes */ }
    } catch {
      // a v1 tunnel may already be gone when the echo answers
    } finally {
      conn.close();
    }
  })();
  return { port: l.addr.port, served, close: () => l.close() };
}

Deno.test("listener: ok response with features, then a half-closed exchange", async () => {
  const target = echoTarget();
  const events: string[] = [];
  const { sender, done } = start(config({
    observer: {
      connectionStarted: (role, t) => events.push(`start ${role} ${t}`),
      connectionEnded: (role, _t, r) => events.push(`end ${role} ${r.cause} ${r.tcpToWs}`),
      dialDuration: (role) => events.push(`dial ${role}`),
    },
  }));
  await sender.send(
    `{"version":1,"target":"127.0.0.1:${target.port}","metadata":{"x-aztunnel-features":"half-close,future"}}`,
  );
  assert.deepEqual(await sender.receive(), {
    type: "text",
    data: `{"version":1,"ok":true,"listener_id":"${LID}","features":["half-close"]}`,
  });
  await sender.send(enc.encode("hello"));
  await sender.send(EOF_MESSAGE);
  let got = "";
  for (;;) {
    const m = await sender.receive();
    assert.ok(m);
    if (m.type === "text") {
      assert.equal(m.data, EOF_MESSAGE);
      break;
    }
    got += dec.decode(m.data);
  }
  assert.equal(got, "HELLO!");
  assert.equal(await sender.receive(), null);
  assert.deepEqual(sender.closeInfo, { code: 1000, reason: "done" });
  await sender.close();
  await done;
  await target.served;
  target.close();
  assert.deepEqual(events, [
    "dial listener",
    `start listener 127.0.0.1:${target.port}`,
    "end listener peer_close 6",
  ]);
});

Deno.test("listener: a Go sender (no features) gets plain v1: its EOF ends the tunnel", async () => {
  const target = echoTarget();
  const { sender, done } = start(config());
  await sender.send(`{"version":1,"target":"127.0.0.1:${target.port}","bridge_id":"X"}`);
  assert.deepEqual(await sender.receive(), {
    type: "text",
    data: `{"version":1,"ok":true,"listener_id":"${LID}"}`,
  });
  await sender.send(enc.encode("abc"));
  const m = await sender.receive();
  assert.deepEqual(m, { type: "binary", data: enc.encode("ABC") });
  // Go senders hang up abruptly.
  sender.closeNow();
  await done;
  await target.served;
  target.close();
});
