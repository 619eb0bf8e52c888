import assert from "node:assert/strict";
import { MUX_MIN_WINDOW } from "../../lib/mux/frame.ts";
import { WsError } from "../../lib/ws/errors.ts";
import { ascii, frame, muxPair, nextBytes, rawMux, streamPair, track } from "../helpers/mux.ts";
import { rejectsWith } from "../helpers/ws_peers.ts";

const lastFrame = (sent: { type: string; data: unknown }[]) => {
  const m = sent.at(-1)!;
  assert.equal(m.type, "binary");
  return [...(m.data as Uint8Array)];
};

Deno.test("mux close: opener closes first; the acceptor still sends, then answers", async () => {
  const counts: number[] = [];
  const { opener, acceptor, a, b } = muxPair({ onStreamsChange: (n) => counts.push(n) }, {});
  const [x, y] = await streamPair(opener, acceptor);
  await x.send("last words");
  const closing = track(x.close(1000, "bye"));
  assert.equal(x.closeSent, true);
  assert.deepEqual(lastFrame(a.sent), frame(5, 1, 0x03, 0xe8, ...ascii("bye")));
  await rejectsWith(x.send("more"), "closed");

  assert.deepEqual(await y.receive(), { type: "text", data: "last words" });
  assert.equal(await y.receive(), null);
  assert.deepEqual(y.closeInfo, { code: 1000, reason: "bye" });
  assert.equal(y.closeSent, false);
  await y.send("reply"); // the half-closed state: the peer's Close does not stop our sends
  assert.deepEqual(await x.receive(), { type: "text", data: "reply" });
  assert.equal(closing.settled, false);

  await y.close(4000, "answer");
  assert.deepEqual(lastFrame(b.sent), frame(5, 1, 0x0f, 0xa0, ...ascii("answer")));
  await closing.promise;
  await Promise.all([x.closed, y.closed]);
  assert.equal(await x.receive(), null);
  assert.deepEqual(x.closeInfo, { code: 4000, reason: "answer" });
  assert.equal(await y.receive(), null);
  assert.equal(opener.streams, 0);
  assert.equal(acceptor.streams, 0);
  assert.deepEqual(counts, [1, 0]);
  assert.equal(opener.ended, false, "a stream's close never ends the carrier");
  await opener.close();
  await Promise.all([opener.done, acceptor.done]);
});

Deno.test("mux close: acceptor closes first; messages before the CLOSE come first", async () => {
  const { opener, acceptor } = muxPair();
  const [x, y] = await streamPair(opener, acceptor);
  await y.send(new Uint8Array([1]));
  await y.send(new Uint8Array([2]));
  const closing = y.close(); // default 1000 ""
  assert.deepEqual(await x.receive(), { type: "binary", data: new Uint8Array([1]) });
  assert.equal(x.closeInfo, null, "the CLOSE is not seen before the messages ahead of it");
  assert.deepEqual(await x.receive(), { type: "binary", data: new Uint8Array([2]) });
  assert.equal(await x.receive(), null);
  assert.deepEqual(x.closeInfo, { code: 1000, reason: "" });
  await x.close(1000, "");
  await closing;
  await Promise.all([x.closed, y.closed]);
  assert.deepEqual(y.closeInfo, { code: 1000, reason: "" });
  await opener.close();
  await Promise.all([opener.done, acceptor.done]);
});

Deno.test("mux close: both close at once", async () => {
  const { opener, acceptor } = muxPair();
  const [x, y] = await streamPair(opener, acceptor);
  await Promise.all([x.close(1000, "x"), y.close(1001, "y")]);
  assert.deepEqual(x.closeInfo, { code: 1001, reason: "y" });
  assert.deepEqual(y.closeInfo, { code: 1000, reason: "x" });
  assert.equal(opener.streams + acceptor.streams, 0);
  await opener.close();
  await Promise.all([opener.done, acceptor.done]);
});

Deno.test("mux close: closeNow resets; the peer sees a lost connection with 1006", async () => {
  const { opener, acceptor, a } = muxPair();
  const [x, y] = await streamPair(opener, acceptor);
  const pending = rejectsWith(y.receive(), "connection_lost");
  x.closeNow();
  assert.deepEqual(lastFrame(a.sent), frame(6, 1));
  assert.equal(opener.streams, 0);
  await x.closed;
  await pending;
  assert.deepEqual(y.closeInfo, { code: 1006, reason: "" });
  assert.equal(y.closeSent, true);
  await rejectsWith(y.receive(), "connection_lost");
  await rejectsWith(y.send("x"), "closed");
  await y.closed;
  assert.equal(acceptor.streams, 0);
  await rejectsWith(x.receive(), "closed");
  await rejectsWith(x.send("x"), "closed");
  assert.equal(x.closeInfo, null);
  await y.close(); // a no-op on a released stream
  await opener.close();
  await Promise.all([opener.done, acceptor.done]);
});

Deno.test("mux close: no answer within closeTimeoutMs resets the stream", async () => {
  const { session, raw, send } = rawMux("acceptor", { closeTimeoutMs: 20 });
  await send(frame(1, 1));
  const s = (await session.accept())!;
  const closing = s.close(1000, "");
  assert.deepEqual(await nextBytes(raw), frame(5, 1, 0x03, 0xe8));
  await closing;
  assert.deepEqual(await nextBytes(raw), frame(6, 1));
  assert.equal(session.streams, 0);
  await raw.close();
  await session.done;
});

Deno.test("mux close: carrier loss fails every stream, accept() says null, done resolves", async () => {
  const { opener, acceptor, b } = muxPair({ windowBytes: MUX_MIN_WINDOW });
  const [x, y] = await streamPair(opener, acceptor);
  const [z, w] = await streamPair(opener, acceptor);
  await x.send(new Uint8Array(32768));
  const blocked = rejectsWith(x.send(new Uint8Array(1)), "connection_lost");
  const pendingAccept = acceptor.accept();
  const receives = [x.receive(), z.receive(), w.receive()].map((r) =>
    rejectsWith(r, "connection_lost")
  );
  b.closeNow();
  assert.equal(await pendingAccept, null);
  assert.equal(await acceptor.accept(), null);
  for (const err of await Promise.all(receives)) assert.ok(err instanceof WsError);
  await blocked;
  // y's unread message goes with the carrier, as unread data goes with a dropped socket.
  await rejectsWith(y.receive(), "connection_lost");
  for (const s of [x, y, z, w]) {
    assert.deepEqual(s.closeInfo, { code: 1006, reason: "" });
    await s.closed;
  }
  await Promise.all([opener.done, acceptor.done]);
  assert.equal(opener.ended && acceptor.ended, true);
  assert.equal(opener.streams + acceptor.streams, 0);
  assert.throws(() => opener.open(), { name: "MuxError", code: "mux_closed" });
});

Deno.test("mux close: the peer's carrier Close ends the session and is answered with its code", async () => {
  const { session, raw, send } = rawMux("acceptor");
  await send(frame(1, 1));
  const s = (await session.accept())!;
  const pending = rejectsWith(s.receive(), "connection_lost");
  await raw.close(4001, "going");
  await pending;
  assert.equal(await session.accept(), null);
  await session.done;
  assert.deepEqual(raw.closeInfo, { code: 4001, reason: "going" });
});

Deno.test("mux close: session.close closes the carrier with its code; streams fail", async () => {
  const { opener, acceptor, b } = muxPair();
  const [x, y] = await streamPair(opener, acceptor);
  const pending = rejectsWith(y.receive(), "connection_lost");
  await opener.close(1001, "shutdown");
  await rejectsWith(x.receive(), "connection_lost");
  await pending;
  await Promise.all([opener.done, acceptor.done]);
  assert.deepEqual(b.closeInfo, { code: 1001, reason: "shutdown" });
});

Deno.test("mux close: our CLOSE waits behind sends still waiting for window", async () => {
  const { opener, acceptor } = muxPair({ windowBytes: MUX_MIN_WINDOW });
  const [x, y] = await streamPair(opener, acceptor);
  await x.send(new Uint8Array(32768));
  const blocked = x.send(new Uint8Array([7]));
  const closing = x.close(1000, "after data");
  assert.equal((await y.receive())?.data.length, 32768);
  await blocked;
  assert.deepEqual(await y.receive(), { type: "binary", data: new Uint8Array([7]) });
  assert.equal(await y.receive(), null);
  assert.deepEqual(y.closeInfo, { code: 1000, reason: "after data" });
  await y.close();
  await closing;
  await opener.close();
  await Promise.all([opener.done, acceptor.done]);
});
