/**
 * The relay's bridge: in-memory sockets for exact backpressure and close-forwarding behaviour, then
 * real sockets through the relay for close codes, half-close, latency, pings and limits.
 */
import assert from "node:assert/strict";
import type { CloseInfo, MessageSocket, WsMessage } from "../../lib/ws/types.ts";
import { bridgeSockets, forwardedClose, utf8Length } from "../../lib/server/bridge.ts";
import {
  acceptConnection,
  closePair,
  connectSender,
  listen,
  withRelay,
} from "./server_helpers_test.ts";
import type { RelayServer } from "../../lib/server/mod.ts";
import { makeTestCerts } from "../helpers/certs.ts";

/** A scripted MessageSocket: the test feeds incoming messages and controls when sends complete. */
class FakeSocket implements MessageSocket {
  readonly sent: (string | Uint8Array)[] = [];
  readonly closes: { code: number; reason: string }[] = [];
  receives = 0;
  /** When set, send() waits for this gate. */
  gate: PromiseWithResolvers<void> | null = null;
  closeInfo: CloseInfo | null = null;
  closeSent = false;
  readonly #inbox: (WsMessage | CloseInfo | Error)[] = [];
  #waiter: (() => void) | null = null;
  readonly #closed = Promise.withResolvers<void>();
  readonly closed = this.#closed.promise;

  feed(item: WsMessage | CloseInfo | Error): void {
    this.#inbox.push(item);
    this.#waiter?.();
  }

  async receive(): Promise<WsMessage | null> {
    this.receives++;
    while (this.#inbox.length === 0) {
      if (this.closeSent && this.closeInfo) return null;
      await new Promise<void>((r) => this.#waiter = r);
    }
    const item = this.#inbox.shift()!;
    if (item instanceof Error) throw item;
    if ("code" in item) {
      this.closeInfo = item;
      this.#settle();
      return null;
    }
    return item;
  }

  async send(data: string | Uint8Array): Promise<void> {
    if (this.closeSent) throw new Error("send after close");
    if (this.gate) await this.gate.promise;
    this.sent.push(data);
  }

  ping(): Promise<void> {
    return Promise.resolve();
  }

  close(code = 1000, reason = ""): Promise<void> {
    this.closeSent = true;
    this.closes.push({ code, reason });
    this.#settle();
    return Promise.resolve();
  }

  closeNow(): void {
    this.closeSent = true;
    this.closeInfo ??= { code: 1006, reason: "" };
    this.#settle();
    this.#waiter?.();
  }

  #settle(): void {
    if (this.closeSent && this.closeInfo) this.#closed.resolve();
  }
}

/** Lets pending promise callbacks run (no timers involved). */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

Deno.test("bridge (fake sockets): messages, then Close forwarded both ways in order", async () => {
  const s = new FakeSocket(), l = new FakeSocket();
  const done = bridgeSockets(s, l, { latencyMs: 0, inFlightBytes: 1 << 20 });
  s.feed({ type: "text", data: "hi" });
  s.feed({ type: "binary", data: new Uint8Array([7]) });
  s.feed({ code: 4001, reason: "sender done" });
  await settle();
  assert.deepEqual(l.sent, ["hi", new Uint8Array([7])]);
  assert.deepEqual(l.closes, [{ code: 4001, reason: "sender done" }]);
  // Half-closed: the listener still talks to the sender.
  l.feed({ type: "text", data: "late" });
  await settle();
  assert.deepEqual(s.sent, ["late"]);
  assert.deepEqual(s.closes, []);
  l.feed({ code: 1000, reason: "listener done" });
  const res = await done;
  assert.deepEqual(s.closes, [{ code: 1000, reason: "listener done" }]);
  assert.equal(res.senderToListener, 3);
  assert.equal(res.listenerToSender, 4);
  assert.deepEqual(res.senderClose, { code: 4001, reason: "sender done" });
  assert.deepEqual(res.listenerClose, { code: 1000, reason: "listener done" });
});

Deno.test("bridge (fake sockets): no latency = one message read ahead of the blocked write", async () => {
  const s = new FakeSocket(), l = new FakeSocket();
  l.gate = Promise.withResolvers();
  const done = bridgeSockets(s, l, { latencyMs: 0, inFlightBytes: 1 << 20 });
  for (let i = 0; i < 5; i++) s.feed({ type: "binary", data: new Uint8Array(10) });
  await settle();
  assert.equal(s.receives, 2, "one message blocked on its write, one read ahead");
  l.gate.resolve();
  l.gate = null;
  await settle();
  assert.equal(l.sent.length, 5);
  s.feed({ code: 1000, reason: "" });
  l.feed({ code: 1000, reason: "" });
  await done;
});

Deno.test("bridge (fake sockets): with latency, in-flight bytes stop at the budget", async () => {
  const s = new FakeSocket(), l = new FakeSocket();
  l.gate = Promise.withResolvers();
  const stop = new AbortController();
  const done = bridgeSockets(s, l, { latencyMs: 1, inFlightBytes: 100, signal: stop.signal });
  for (let i = 0; i < 10; i++) s.feed({ type: "binary", data: new Uint8Array(40) });
  // The writer is stuck on the first send; the queue stops at 100 bytes: 40 + 40 fit, the third
  // message (read, plus one receive ahead) waits since it would make 120.
  const deadline = Date.now() + 5_000;
  while (s.receives < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
  await settle();
  assert.equal(s.receives, 4);
  assert.equal(l.sent.length, 0);
  stop.abort();
  await done;
  assert.ok(s.closeSent && l.closeSent);
});

Deno.test("bridge (fake sockets): a lost leg ends as Close 1000 (peer connection lost) on the other; errors map", async () => {
  const s = new FakeSocket(), l = new FakeSocket();
  const done = bridgeSockets(s, l, { latencyMs: 0, inFlightBytes: 1 << 20 });
  s.feed(new Error("connection lost"));
  await settle();
  assert.deepEqual(l.closes, [{ code: 1000, reason: "peer connection lost" }]);
  // Messages for a dead leg are drained and dropped until the Close arrives.
  s.closeNow();
  l.feed({ type: "text", data: "into the void" });
  l.feed({ code: 1000, reason: "" });
  const res = await done;
  assert.deepEqual(res.senderClose, { code: 1006, reason: "" });
  assert.equal(res.listenerToSender, 0);

  // A Close frame without a code is still a normal close; only a missing Close is a loss.
  assert.deepEqual(forwardedClose({ code: 1005, reason: "" }), { code: 1000, reason: "" });
  assert.deepEqual(forwardedClose({ code: 1006, reason: "" }), {
    code: 1000,
    reason: "peer connection lost",
  });
  assert.deepEqual(forwardedClose(null), { code: 1000, reason: "peer connection lost" });
  assert.deepEqual(forwardedClose({ code: 1000, reason: "done" }), { code: 1000, reason: "done" });
  assert.deepEqual(forwardedClose({ code: 1001, reason: "bye" }), { code: 1001, reason: "bye" });
  assert.deepEqual(forwardedClose({ code: 4999, reason: "r" }), { code: 4999, reason: "r" });
  const tooBig = Object.assign(new Error("x"), { code: "message_too_big" });
  assert.deepEqual(forwardedClose(null, tooBig), {
    code: 1011,
    reason: "peer sent a message too big",
  });
  assert.equal(utf8Length("aé✓😀"), 1 + 2 + 3 + 4);
  assert.equal(utf8Length("\ud800"), 3);
});

async function pair(srv: RelayServer, path = "hyco") {
  const control = await listen(srv, path);
  const senderP = connectSender(srv, path);
  const { conn: listener } = await acceptConnection(control);
  const sender = await senderP;
  return { control, sender, listener };
}

Deno.test("close codes and reasons cross the relay in both directions", async () => {
  await withRelay({}, async (srv) => {
    const a = await pair(srv);
    await closePair(a.sender, a.listener, 4001, "sender says bye");
    const b = await pair(srv, "other");
    await closePair(b.listener, b.sender, 4002, "listener says bye");
    await a.control.close();
    await b.control.close();
  });
});

Deno.test("half-close: after the sender's Close the listener's data still reaches it", async () => {
  await withRelay({}, async (srv) => {
    for (const senderFirst of [true, false]) {
      const { control, sender, listener } = await pair(srv);
      const [a, b] = senderFirst ? [sender, listener] : [listener, sender];
      await a.send("request");
      // lib/ws drains and drops data after close() unless a receive is pending: keep one pending.
      let pending = a.receive();
      const closing = a.close(1000, "eof");
      assert.deepEqual(await b.receive(), { type: "text", data: "request" });
      assert.equal(await b.receive(), null);
      assert.deepEqual(b.closeInfo, { code: 1000, reason: "eof" });
      for (let i = 0; i < 3; i++) {
        await b.send(new Uint8Array([i]));
        assert.deepEqual(await pending, { type: "binary", data: new Uint8Array([i]) });
        pending = a.receive();
      }
      await b.close(1000, "response done");
      assert.equal(await pending, null);
      await closing;
      assert.deepEqual(a.closeInfo, { code: 1000, reason: "response done" });
      await control.close();
    }
  });
});

Deno.test("a leg dropped without Close reaches the other as Close 1000 (peer connection lost)", async () => {
  await withRelay({}, async (srv) => {
    for (const senderDrops of [true, false]) {
      const { control, sender, listener } = await pair(srv);
      const [gone, left] = senderDrops ? [sender, listener] : [listener, sender];
      gone.closeNow();
      assert.equal(await left.receive(), null);
      assert.deepEqual(left.closeInfo, { code: 1000, reason: "peer connection lost" });
      await left.close();
      await control.close();
    }
  });
});

Deno.test("pings are answered on each leg; 1 MiB each way arrives intact", async () => {
  await withRelay({}, async (srv) => {
    const { control, sender, listener } = await pair(srv);
    const total = 1 << 20;
    const chunk = (i: number) => new Uint8Array(32 * 1024).fill(i & 0xff);
    const pump = async (from: typeof sender, to: typeof sender) => {
      const sending = (async () => {
        for (let i = 0; i * 32 * 1024 < total; i++) await from.send(chunk(i));
      })();
      let got = 0;
      while (got < total) {
        const msg = await to.receive();
        assert.ok(msg && msg.type === "binary");
        assert.ok(msg.data.every((b) => b === ((got / (32 * 1024)) & 0xff)));
        got += msg.data.length;
      }
      await sending;
    };
    await Promise.all([pump(sender, listener), pump(listener, sender)]);
    const pending = [sender.receive(), listener.receive()];
    await sender.ping(5_000);
    await listener.ping(5_000);
    const closing = sender.close();
    assert.equal(await pending[1], null);
    await listener.close();
    assert.equal(await pending[0], null);
    await closing;
    assert.equal(srv.stats().bytesSenderToListener, total);
    assert.equal(srv.stats().bytesListenerToSender, total);
    await control.close();
  });
});

Deno.test("a message over --max-message-size closes the sender with 1009, the listener 1011", async () => {
  await withRelay({ maxMessageSize: 1024 }, async (srv) => {
    const { control, sender, listener } = await pair(srv);
    const pending = sender.receive().catch(() => null);
    await sender.send(new Uint8Array(2048));
    assert.equal(await listener.receive(), null);
    assert.deepEqual(listener.closeInfo, { code: 1011, reason: "peer sent a message too big" });
    await listener.close();
    await pending;
    assert.equal(sender.closeInfo?.code, 1009);
    await sender.close();
    await control.close();
  });
});

Deno.test("latency: accept path and each forwarded message pay the one-way delay", async () => {
  const latency = 150;
  await withRelay({ latencyMs: latency }, async (srv) => {
    const control = await listen(srv, "hyco");
    const t0 = performance.now();
    const senderP = connectSender(srv, "hyco");
    const { conn: listener } = await acceptConnection(control);
    const tAccepted = performance.now();
    const sender = await senderP;
    const tConnected = performance.now();
    // Accept message one hop after the connect; the 101 one hop after the dial-back.
    assert.ok(tAccepted - t0 >= latency, `accept after ${tAccepted - t0} ms`);
    assert.ok(tConnected - t0 >= 2 * latency, `connected after ${tConnected - t0} ms`);

    const sentAt: number[] = [];
    for (let i = 0; i < 5; i++) {
      sentAt.push(performance.now());
      await sender.send(`m${i}`);
    }
    for (let i = 0; i < 5; i++) {
      const msg = await listener.receive();
      assert.deepEqual(msg, { type: "text", data: `m${i}` });
      await listener.send(`echo ${i}`);
    }
    for (let i = 0; i < 5; i++) {
      assert.deepEqual(await sender.receive(), { type: "text", data: `echo ${i}` });
      assert.ok(performance.now() - sentAt[i] >= 2 * latency, `echo ${i} too fast`);
    }
    // Pipelined: five messages did not take five delays each way.
    assert.ok(performance.now() - sentAt[0] < 2 * latency + 4 * latency, "not pipelined");
    await closePair(sender, listener);
    await control.close();
  });
});

Deno.test("wss:// with a certificate from a private CA", async () => {
  await using certs = await makeTestCerts();
  const { ca, cert, key } = certs;
  await withRelay({ bind: "localhost:0", tls: { cert, key } }, async (srv) => {
    assert.match(srv.url, /^wss:\/\/localhost:\d+$/);
    const control = await listen(srv, "hyco", undefined, { caCerts: [ca] });
    const senderP = connectSender(srv, "hyco", { caCerts: [ca] });
    const { accept, conn: listener } = await acceptConnection(control, undefined, [ca]);
    assert.match(accept.address, /^wss:\/\/localhost:\d+\/\$hc\/hyco\?/);
    const sender = await senderP;
    await sender.send("over tls");
    assert.deepEqual(await listener.receive(), { type: "text", data: "over tls" });
    await closePair(sender, listener);
    await control.close();
  });
});

Deno.test("a half-closed leg lives until halfClosedTimeoutMs, then is dropped", async () => {
  await withRelay({ halfClosedTimeoutMs: 400 }, async (srv) => {
    const { control, sender, listener } = await pair(srv);
    const pending = sender.receive();
    const closing = sender.close(1000, "eof");
    assert.equal(await listener.receive(), null);
    const halfClosedAt = performance.now();
    await listener.send("still flowing");
    assert.deepEqual(await pending, { type: "text", data: "still flowing" });
    // The listener never sends its Close: the relay gives up on that leg at the deadline.
    const dropped = sender.receive();
    assert.equal(await dropped, null);
    assert.ok(performance.now() - halfClosedAt >= 350, "dropped before the half-closed deadline");
    await closing;
    await listener.close().catch(() => {});
    await listener.closed;
    await control.close();
  });
});
