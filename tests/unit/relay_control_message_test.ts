import assert from "node:assert/strict";
import {
  parseControlMessage,
  renewTokenMessage,
  responseMessage,
} from "../../lib/relay/control_message.ts";

Deno.test("parseControlMessage takes Azure's accept, escaped slashes and all", () => {
  // Shape from a real capture: .NET's serializer escapes `/` as `\/`.
  const text =
    '{"accept":{"address":"wss:\\/\\/g17-prod-by3-010-sb.servicebus.windows.net\\/$hc\\/' +
    'yesclientauth?sb-hc-action=accept&sb-hc-id=ca49_G17_G30","id":"ca49_G17_G30",' +
    '"connectHeaders":{"Sec-WebSocket-Key":"NsoFiXBuR3i2nE8Tx0+maA==","Host":"gorelay:443"},' +
    '"remoteEndpoint":{"address":"73.83.210.109","port":62917}}}';
  assert.deepEqual(parseControlMessage(text), {
    kind: "accept",
    accept: {
      address:
        "wss://g17-prod-by3-010-sb.servicebus.windows.net/$hc/yesclientauth?sb-hc-action=accept&sb-hc-id=ca49_G17_G30",
      id: "ca49_G17_G30",
      connectHeaders: { "Sec-WebSocket-Key": "NsoFiXBuR3i2nE8Tx0+maA==", Host: "gorelay:443" },
      remoteEndpoint: { address: "73.83.210.109", port: 62917 },
    },
  });
});

Deno.test("parseControlMessage tolerates missing optional fields", () => {
  assert.deepEqual(parseControlMessage('{"accept":{"address":"ws://h/x","extra":1}}'), {
    kind: "accept",
    accept: { address: "ws://h/x", id: "", connectHeaders: {}, remoteEndpoint: undefined },
  });
  const odd = parseControlMessage(
    '{"accept":{"address":"ws://h/x","id":"i","connectHeaders":{"a":"b","n":1},"remoteEndpoint":{"address":"x"}}}',
  );
  assert.deepEqual(odd, {
    kind: "accept",
    accept: { address: "ws://h/x", id: "i", connectHeaders: { a: "b" }, remoteEndpoint: undefined },
  });
});

Deno.test("parseControlMessage ignores other commands and flags garbage", () => {
  for (const t of ['{"injectFault":{}}', "{}", "null", '{"accept":null}', '{"request":null}']) {
    assert.deepEqual(parseControlMessage(t), { kind: "ignored" }, t);
  }
  for (
    const t of [
      "",
      "not json",
      "{",
      "[1]",
      '"str"',
      "42",
      '{"accept":"x"}',
      '{"accept":{}}',
      '{"accept":{"address":""}}',
      '{"accept":{"address":5}}',
      '{"accept":{"address":"ws://h","id":7}}',
      '{"request":{"address":"x"}}',
      '{"request":"x"}',
      '{"request":{"id":"r","address":5}}',
      '{"request":{"id":"r","body":"yes"}}',
    ]
  ) {
    const r = parseControlMessage(t);
    assert.equal(r.kind, "invalid", t);
    assert.ok(r.kind === "invalid" && r.error.length > 0);
  }
});

Deno.test("renewTokenMessage is the protocol's JSON", () => {
  assert.equal(renewTokenMessage('a"b'), '{"renewToken":{"token":"a\\"b"}}');
});

Deno.test("parseControlMessage takes HTTP-mode requests with and without a body member", () => {
  // Shape from the protocol notes §6 (a real capture's members).
  const text =
    '{"request":{"address":"wss:\\/\\/g12-prod-by3-010-sb.servicebus.windows.net\\/$hc\\/h' +
    '?sb-hc-action=request&sb-hc-id=c126_G12","id":"c126_G12","requestTarget":"\\/h\\/abc?x=1",' +
    '"method":"POST","remoteEndpoint":{"address":"73.83.210.109","port":1},' +
    '"requestHeaders":{"Host":"ns"},"body":true}}';
  assert.deepEqual(parseControlMessage(text), {
    kind: "request",
    request: {
      id: "c126_G12",
      address:
        "wss://g12-prod-by3-010-sb.servicebus.windows.net/$hc/h?sb-hc-action=request&sb-hc-id=c126_G12",
      body: true,
    },
  });
  assert.deepEqual(parseControlMessage('{"request":{"id":"r2","address":"wss://h/x"}}'), {
    kind: "request",
    request: { id: "r2", address: "wss://h/x", body: undefined },
  });
});

Deno.test("responseMessage is the protocol's bodiless response", () => {
  assert.equal(
    responseMessage("c126_G12", 501, "this listener serves only WebSocket tunnels"),
    '{"response":{"requestId":"c126_G12","statusCode":501,' +
      '"statusDescription":"this listener serves only WebSocket tunnels","responseHeaders":{},' +
      '"body":false}}',
  );
});
