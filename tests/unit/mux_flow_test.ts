import assert from "node:assert/strict";
import { pattern } from "../helpers/bytes.ts";
import {
  MUX_MESSAGE_COST,
  MUX_MIN_WINDOW,
  MUX_SESSION_GROWTH,
  MUX_STREAM_MAX_WINDOW,
} from "../../lib/mux/frame.ts";
import { WindowBudget } from "../../lib/mux/budget.ts";
import type { MuxStream } from "../../lib/mux/stream.ts";
import {
  credits,
  frame,
  muxPair,
  nextBytes,
  rawMux,
  receiveBytes,
  sendAll,
  streamPair,
  track,
} from "../helpers/mux.ts";
import { rejectsWith } from "../helpers/ws_peers.ts";

const WINDOW = 64 * 1024;
const MiB = 1024 * 1024;

Deno.test("mux flow: a stream nobody reads blocks at exactly its window; another flows on", async () => {
  const { opener, acceptor, b } = muxPair({ windowBytes: WINDOW });
  const [aOut, aIn] = await streamPair(opener, acceptor);
  const [bOut, bIn] = await streamPair(opener, acceptor);

  // 64 messages of 960 bytes (1 KiB each with the 64 a message costs) fill A's window exactly:
  // each send completes; the next byte must wait.
  for (let i = 0; i < 64; i++) await aOut.send(pattern(960, i));
  const blocked = track(aOut.send(new Uint8Array([0xab])));
  const later = track(aOut.send("after")); // FIFO: waits behind the blocked send

  // Meanwhile B moves 1 MiB each way over the same carrier.
  const up = pattern(MiB, 1);
  const down = pattern(MiB, 2);
  const [, gotUp, , gotDown] = await Promise.all([
    sendAll(bOut, up),
    receiveBytes(bIn, MiB),
    sendAll(bIn, down),
    receiveBytes(bOut, MiB),
  ]);
  assert.deepEqual(gotUp, up);
  assert.deepEqual(gotDown, down);
  assert.equal(blocked.settled, false, "A's send went past its window");
  assert.equal(later.settled, false);
  assert.deepEqual(credits(b.sent, aIn.id), [], "A's receiver credited unread data");

  // A quarter window read: one CREDIT, and the blocked send goes through.
  for (let i = 0; i < 16; i++) {
    assert.deepEqual(await aIn.receive(), { type: "binary", data: pattern(960, i) });
  }
  assert.deepEqual(credits(b.sent, aIn.id), [16384]);
  await blocked.promise;
  await later.promise;
  // A round trip on B: the carrier is FIFO, so A's last two messages are queued by now.
  await bOut.send("sync");
  assert.deepEqual(await bIn.receive(), { type: "text", data: "sync" });
  for (let i = 16; i < 64; i++) {
    assert.deepEqual(await aIn.receive(), { type: "binary", data: pattern(960, i) });
  }
  assert.deepEqual(await aIn.receive(), { type: "binary", data: new Uint8Array([0xab]) });
  assert.deepEqual(await aIn.receive(), { type: "text", data: "after" });
  // Batched per quarter window; the tail (1 + 64 and 5 + 64) when the queue ran empty.
  assert.deepEqual(credits(b.sent, aIn.id), [16384, 16384, 16384, 16384, 134]);

  await opener.close();
  await Promise.all([opener.done, acceptor.done]);
});

Deno.test("mux flow: an interactive stream gets its credit back message by message", async () => {
  const { opener, acceptor, a, b } = muxPair({ windowBytes: WINDOW });
  const [x, y] = await streamPair(opener, acceptor);
  for (let i = 0; i < 3; i++) {
    await x.send(`ping ${i}`);
    assert.deepEqual(await y.receive(), { type: "text", data: `ping ${i}` });
    await y.send(new Uint8Array([i]));
    assert.deepEqual(await x.receive(), { type: "binary", data: new Uint8Array([i]) });
  }
  // Each message's bytes and the 64 it costs.
  assert.deepEqual(credits(b.sent, y.id), [70, 70, 70]);
  assert.deepEqual(credits(a.sent, x.id), [65, 65, 65]);
  await opener.close();
  await Promise.all([opener.done, acceptor.done]);
});

Deno.test("mux flow: many streams at once, each whole and in order", async () => {
  const { opener, acceptor } = muxPair({ windowBytes: WINDOW });
  const pairs = await Promise.all(Array.from({ length: 16 }, () => streamPair(opener, acceptor)));
  assert.equal(opener.streams, 16);
  assert.equal(acceptor.streams, 16);
  await Promise.all(pairs.map(async ([out, inn], i) => {
    const data = pattern(200_000 + i, i);
    const [, got] = await Promise.all([
      sendAll(out, data, 7000 + i),
      receiveBytes(inn, data.length),
    ]);
    assert.deepEqual(got, data);
  }));
  await opener.close();
  await Promise.all([opener.done, acceptor.done]);
});

Deno.test("mux flow: send limits", async () => {
  const { opener, acceptor } = muxPair();
  const [x] = await streamPair(opener, acceptor);
  await rejectsWith(x.send(new Uint8Array(32769)), "message_too_big");
  await rejectsWith(x.send("é".repeat(16385)), "message_too_big");
  await x.send(new Uint8Array(32768));
  assert.throws(() => muxPair({ windowBytes: 32767 }), RangeError);
  await opener.close();
  await Promise.all([opener.done, acceptor.done]);
});

/** Ends a raw session from its side; the raw peer answers the carrier's Close. */
async function closeRaw(m: ReturnType<typeof rawMux>): Promise<void> {
  const closing = m.session.close();
  while (await m.next() !== null) { /* frames still queued, then the Close */ }
  await m.raw.close();
  await closing;
  await m.session.done;
}

/** BINARY frame bytes of `n` zero bytes on stream `id`. */
const data = (id: number, n: number) => frame(3, id, ...new Uint8Array(n));
/** CREDIT frame bytes. */
const credit = (id: number, n: number) =>
  frame(4, id, n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);

Deno.test("mux flow: out of window, a sender says BLOCKED once per CREDIT", async () => {
  const m = rawMux("opener", { windowBytes: MUX_MIN_WINDOW });
  const s = m.session.open();
  await s.send(new Uint8Array(32768));
  const first = track(s.send(new Uint8Array([1])));
  const second = track(s.send(new Uint8Array([2])));
  assert.deepEqual(await nextBytes(m.raw), frame(1, 1));
  assert.equal((await nextBytes(m.raw)).length, 5 + 32768);
  assert.deepEqual(await nextBytes(m.raw), frame(7, 1), "BLOCKED 07 00000001");
  await m.send(credit(1, 65)); // one byte and what a message costs
  await first.promise;
  assert.deepEqual(await nextBytes(m.raw), frame(3, 1, 1));
  assert.deepEqual(await nextBytes(m.raw), frame(7, 1), "blocked again after the new credit");
  assert.equal(second.settled, false);
  await m.send(credit(1, 65));
  await second.promise;
  assert.deepEqual(await nextBytes(m.raw), frame(3, 1, 2));
  s.closeNow();
  await closeRaw(m);
});

/** Frames that cost exactly `window`: full 32768-byte messages, then one for the rest. */
function windowWorth(id: number, window: number): number[][] {
  const full = Math.floor(window / MUX_MIN_WINDOW);
  const rest = window % MUX_MIN_WINDOW;
  const out = Array.from({ length: full }, () => data(id, 32768));
  if (rest > 0) out.push(data(id, rest - MUX_MESSAGE_COST));
  return out;
}

/** Reads `n` messages of `s`. */
async function drain(s: MuxStream, n: number): Promise<void> {
  for (let i = 0; i < n; i++) assert.equal((await s.receive())?.type, "binary");
}

/** Reads every frame the session sends (so its writes never wait), until the carrier's Close. */
function collect(m: ReturnType<typeof rawMux>): { frames: number[][]; done: Promise<void> } {
  const frames: number[][] = [];
  const done = (async () => {
    for (;;) {
      const msg = await m.raw.receive();
      if (msg === null) return;
      if (msg.type === "binary") frames.push([...msg.data]);
    }
  })();
  return { frames, done };
}

/** Ends a raw session whose frames `collect` reads. */
async function closeCollected(m: ReturnType<typeof rawMux>, c: { done: Promise<void> }) {
  const closing = m.session.close();
  await c.done;
  await m.raw.close();
  await closing;
  await m.session.done;
}

/** A window's worth sent and read, then BLOCKED and a TEXT to see it processed. */
async function round(m: ReturnType<typeof rawMux>, s: MuxStream): Promise<void> {
  const frames = windowWorth(s.id, s.receiveWindow);
  await m.send(...frames);
  await drain(s, frames.length);
  await m.send(frame(7, s.id), frame(2, s.id, 0x2e));
  assert.deepEqual(await s.receive(), { type: "text", data: "." });
}

Deno.test("mux flow: BLOCKED after a window sent and read doubles it; never for a slow reader", async () => {
  const m = rawMux("acceptor", { windowBytes: MUX_MIN_WINDOW });
  const c = collect(m);
  await m.send(frame(1, 1), frame(1, 2), frame(1, 3));
  const fast = (await m.session.accept())!;
  const slow = (await m.session.accept())!;
  const early = (await m.session.accept())!;
  // BLOCKED before a window's worth was sent proves nothing.
  await m.send(frame(7, 3), frame(2, 3, 0x2e));
  assert.deepEqual(await early.receive(), { type: "text", data: "." });
  assert.equal(early.receiveWindow, MUX_MIN_WINDOW);
  // Fast: the window read at once, then BLOCKED: the round trip is the limit, the window doubles.
  await round(m, fast);
  assert.equal(fast.receiveWindow, 2 * MUX_MIN_WINDOW);
  await round(m, fast);
  assert.equal(fast.receiveWindow, 4 * MUX_MIN_WINDOW);
  // Slow: the whole window still waiting here when BLOCKED comes: no growth.
  // (A TEXT on another stream behind them: once it is read, the session has seen them all.)
  await m.send(...windowWorth(2, MUX_MIN_WINDOW), frame(7, 2), frame(2, 3, 0x2e));
  assert.deepEqual(await early.receive(), { type: "text", data: "." });
  await drain(slow, 1);
  assert.equal(slow.receiveWindow, MUX_MIN_WINDOW);
  // The growth went out as credit: fast got back what it sent plus what it grew by.
  await m.send(frame(2, 1, 0x2e));
  assert.deepEqual(await fast.receive(), { type: "text", data: "." });
  for (const s of [fast, slow, early]) s.closeNow();
  await closeCollected(m, c);
  const credited = (id: number) =>
    credits(c.frames.map((f) => ({ type: "binary", data: new Uint8Array(f) })), id)
      .reduce((a, n) => a + n, 0);
  const fastSent = 3 * MUX_MIN_WINDOW + 3 * 65;
  assert.equal(credited(1), fastSent + 3 * MUX_MIN_WINDOW);
  assert.equal(credited(2), MUX_MIN_WINDOW);
});

Deno.test("mux flow: growth stops at the stream cap and the session's budget; a release returns it", async () => {
  const m = rawMux("acceptor", { windowBytes: MUX_MIN_WINDOW });
  const c = collect(m);
  /** Rounds until the window stops growing: the stream and its window. */
  const grow = async (id: number) => {
    await m.send(frame(1, id));
    const s = (await m.session.accept())!;
    for (let before = 0; s.receiveWindow !== before;) {
      before = s.receiveWindow;
      await round(m, s);
    }
    return s;
  };
  const one = await grow(1);
  assert.equal(one.receiveWindow, MUX_STREAM_MAX_WINDOW, "the first grows to the stream cap");
  const two = await grow(2);
  assert.equal(two.receiveWindow, MUX_STREAM_MAX_WINDOW, "the second too");
  const three = await grow(3);
  const left = MUX_SESSION_GROWTH - 2 * (MUX_STREAM_MAX_WINDOW - MUX_MIN_WINDOW);
  assert.equal(three.receiveWindow, MUX_MIN_WINDOW + left, "the third: what the budget had left");
  await m.send(frame(6, 1));
  await rejectsWith(one.receive(), "connection_lost");
  const four = await grow(4);
  assert.equal(four.receiveWindow, MUX_STREAM_MAX_WINDOW, "the first's growth came back");
  for (const s of [two, three, four]) s.closeNow();
  await closeCollected(m, c);
});

Deno.test("mux flow: sessions that share a growth budget grow only within it", async () => {
  const shared = new WindowBudget(MUX_MIN_WINDOW);
  const first = rawMux("acceptor", { windowBytes: MUX_MIN_WINDOW, sharedGrowth: shared });
  const second = rawMux("acceptor", { windowBytes: MUX_MIN_WINDOW, sharedGrowth: shared });
  const c1 = collect(first);
  const c2 = collect(second);
  const stream = async (m: ReturnType<typeof rawMux>) => {
    await m.send(frame(1, 1));
    return (await m.session.accept())!;
  };
  const [x, y] = [await stream(first), await stream(second)];
  await round(first, x);
  assert.equal(x.receiveWindow, 2 * MUX_MIN_WINDOW, "the shared budget's one window-worth");
  await round(second, y);
  assert.equal(y.receiveWindow, MUX_MIN_WINDOW, "nothing left for the other session");
  x.closeNow();
  await round(second, y);
  assert.equal(y.receiveWindow, 2 * MUX_MIN_WINDOW, "given back when the first stream went");
  y.closeNow();
  await closeCollected(first, c1);
  await closeCollected(second, c2);
});
