import assert from "node:assert/strict";
import { fakeSocketPair } from "../helpers/fake_socket.ts";

Deno.test("fake socket: messages, close handshake, null after Close", async () => {
  const [a, b] = fakeSocketPair();
  await a.send("hi");
  await a.send(new Uint8Array([1, 2]));
  assert.deepEqual(await b.receive(), { type: "text", data: "hi" });
  assert.deepEqual(await b.receive(), { type: "binary", data: new Uint8Array([1, 2]) });
  const closing = a.close(1000, "done");
  assert.equal(await b.receive(), null);
  assert.deepEqual(b.closeInfo, { code: 1000, reason: "done" });
  await b.close(1000, "");
  await closing;
  await Promise.all([a.closed, b.closed]);
});

Deno.test("fake socket: closeNow makes the peer's receive reject", async () => {
  const [a, b] = fakeSocketPair();
  const pending = b.receive();
  a.closeNow();
  await assert.rejects(pending, /connection lost/);
  await Promise.all([a.closed, b.closed]);
});
