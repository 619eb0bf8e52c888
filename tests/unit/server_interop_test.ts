/**
 * An independent client stack (npm `ws`, what hyco-ws builds on) against the relay: it offers
 * permessage-deflate by default, sends the token in the ServiceBusAuthorization header, and checks
 * the 101 strictly (accept key, subprotocol echo, no unrequested extension).
 */
import assert from "node:assert/strict";
import WebSocket from "ws";
import { sasToken, withRelay } from "./server_helpers_test.ts";

function opened(ws: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
}

function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve) =>
    ws.once("message", (data: Buffer, isBinary: boolean) => resolve({ data, isBinary }))
  );
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) =>
    ws.once("close", (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() }))
  );
}

Deno.test("npm ws listener and sender interoperate through the relay", async () => {
  await withRelay({}, async (srv) => {
    const token = await sasToken("hyco");
    const control = new WebSocket(`${srv.url}/$hc/hyco?sb-hc-action=listen`, {
      headers: { ServiceBusAuthorization: token },
    });
    await opened(control);
    assert.equal(control.extensions, "", "no permessage-deflate on the control channel");

    const acceptMsg = nextMessage(control);
    const sender = new WebSocket(`${srv.url}/$hc/hyco?sb-hc-action=connect`, ["chat", "other"], {
      headers: { ServiceBusAuthorization: token, "X-App": "1" },
    });
    const { data } = await acceptMsg;
    const accept = JSON.parse(data.toString()).accept;
    // npm ws writes the names as given; the relay keeps them.
    assert.equal(accept.connectHeaders["X-App"], "1");
    assert.match(accept.connectHeaders["Sec-WebSocket-Extensions"], /permessage-deflate/);

    const listener = new WebSocket(accept.address, ["chat"]);
    await Promise.all([opened(listener), opened(sender)]);
    assert.equal(listener.protocol, "chat");
    assert.equal(sender.protocol, "chat");
    assert.equal(sender.extensions, "");

    const atListener = nextMessage(listener);
    sender.send("hello", { binary: false });
    const m1 = await atListener;
    assert.equal(m1.isBinary, false);
    assert.equal(m1.data.toString(), "hello");
    const atSender = nextMessage(sender);
    listener.send(new Uint8Array([1, 2, 3]));
    const m2 = await atSender;
    assert.equal(m2.isBinary, true);
    assert.deepEqual([...m2.data], [1, 2, 3]);

    const listenerClosed = closed(listener);
    const senderClosed = closed(sender);
    sender.close(4000, "done here");
    assert.deepEqual(await listenerClosed, { code: 4000, reason: "done here" });
    assert.deepEqual(await senderClosed, { code: 4000, reason: "done here" });
    const controlClosed = closed(control);
    control.close();
    await controlClosed;
  });
});
