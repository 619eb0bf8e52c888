// Growing read buffers (ReadSizer, BufferedConn) and the shared send scratch of lib/ws, against
// scripted in-memory connections so that every read boundary is exact.
import assert from "node:assert/strict";
import { ReadSizer, SHRINK_AFTER_READS } from "../../lib/net/read_sizer.ts";
import { BufferedConn, READ_BUFFER_INITIAL, READ_BUFFER_SIZE } from "../../lib/ws/io.ts";
import { WebSocketConn } from "../../lib/ws/conn.ts";
import { FrameWriter } from "../../lib/ws/writer.ts";
import {
  applyMask,
  encodeClosePayload,
  encodeFrame,
  newFrameHeader,
  OP_BINARY,
  OP_CLOSE,
  OP_CONTINUATION,
  OP_TEXT,
  parseFrameHeader,
} from "../../lib/ws/frame.ts";
import { pattern } from "../helpers/bytes.ts";
import { concatBytes } from "../../lib/bytes.ts";

const KiB = 1024;
const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * A Deno.Conn stand-in: each read returns the rest of the current scripted chunk, cut to the room
 * offered, then EOF once the script is done. Records the room every read was offered.
 */
class ScriptedConn {
  readonly offered: number[] = [];
  readonly written: Uint8Array[] = [];
  readonly #chunks: Uint8Array[];
  #closed = false;

  constructor(chunks: Uint8Array[]) {
    this.#chunks = chunks.filter((c) => c.length > 0);
  }

  read(p: Uint8Array): Promise<number | null> {
    this.offered.push(p.length);
    const c = this.#chunks[0];
    if (!c || this.#closed) return Promise.resolve(null);
    const n = Math.min(c.length, p.length);
    p.set(c.subarray(0, n));
    if (n === c.length) this.#chunks.shift();
    else this.#chunks[0] = c.subarray(n);
    return Promise.resolve(n);
  }

  write(p: Uint8Array): Promise<number> {
    this.written.push(p.slice());
    return Promise.resolve(p.length);
  }

  closeWrite(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    this.#closed = true;
  }

  asConn(): Deno.Conn {
    return this as unknown as Deno.Conn;
  }
}

/** Cuts `data` into chunks of the given sizes, cycling through them. */
function cut(data: Uint8Array, sizes: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let off = 0, i = 0; off < data.length; i++) {
    const n = sizes[i % sizes.length];
    out.push(data.subarray(off, off + n));
    off += n;
  }
  return out;
}

// ---- ReadSizer ----

Deno.test("ReadSizer: reads that fill the room double the size up to max; others keep it", () => {
  const s = new ReadSizer(8 * KiB, 64 * KiB + 64);
  assert.equal(s.size, 8 * KiB);
  assert.equal(s.record(100, 8 * KiB), 8 * KiB);
  assert.equal(s.record(8 * KiB - 1, 8 * KiB), 8 * KiB);
  assert.equal(s.record(8 * KiB, 8 * KiB), 16 * KiB);
  assert.equal(s.record(16 * KiB, 16 * KiB), 32 * KiB);
  assert.equal(s.record(32 * KiB, 32 * KiB), 64 * KiB);
  assert.equal(s.record(64 * KiB, 64 * KiB), 64 * KiB + 64);
  assert.equal(s.record(64 * KiB + 64, 64 * KiB + 64), 64 * KiB + 64, "capped at max");
  // Room smaller than the buffer (unconsumed bytes kept at its start): filling it still counts.
  const t = new ReadSizer(8 * KiB, 64 * KiB);
  assert.equal(t.record(8 * KiB - 10, 8 * KiB - 10), 16 * KiB);
});

Deno.test("ReadSizer: a streak of reads at most a quarter full shrinks back to initial", () => {
  const s = new ReadSizer(8 * KiB, 64 * KiB);
  for (const size of [8, 16, 32]) s.record(size * KiB, size * KiB);
  assert.equal(s.size, 64 * KiB);
  for (let i = 1; i < SHRINK_AFTER_READS; i++) {
    assert.equal(s.record(16 * KiB, 64 * KiB), 64 * KiB, `small read ${i}`);
  }
  // A read above a quarter breaks the streak: it starts over.
  assert.equal(s.record(16 * KiB + 1, 64 * KiB), 64 * KiB);
  for (let i = 1; i < SHRINK_AFTER_READS; i++) s.record(1, 64 * KiB);
  assert.equal(s.size, 64 * KiB);
  assert.equal(s.record(0, 64 * KiB), 8 * KiB, "the streak's last read shrinks");
  // At the initial size small reads change nothing, and the streak does not carry over.
  for (let i = 0; i < 2 * SHRINK_AFTER_READS; i++) s.record(1, 8 * KiB);
  assert.equal(s.size, 8 * KiB);
  assert.equal(s.record(8 * KiB, 8 * KiB), 16 * KiB);
  assert.equal(s.record(1, 16 * KiB), 16 * KiB, "one small read is not a streak");
});

Deno.test("ReadSizer: sizes must be integers with 0 < initial <= max", () => {
  assert.throws(() => new ReadSizer(0, 10), RangeError);
  assert.throws(() => new ReadSizer(20, 10), RangeError);
  assert.throws(() => new ReadSizer(1.5, 10), RangeError);
  assert.equal(new ReadSizer(10, 10).record(10, 10), 10);
});

// ---- BufferedConn ----

Deno.test("BufferedConn: starts at 8 KiB, doubles after each read that fills it, up to the max", async () => {
  const data = pattern(400 * KiB);
  const conn = new ScriptedConn([data]);
  const io = new BufferedConn(conn.asConn());
  assert.equal(io.buf.length, READ_BUFFER_INITIAL);
  assert.equal(READ_BUFFER_INITIAL, 8 * KiB);
  assert.equal(READ_BUFFER_SIZE, 64 * KiB + 64);
  const sizes: number[] = [];
  const got: Uint8Array[] = [];
  while (await io.fill()) {
    sizes.push(io.buf.length);
    got.push(io.buf.slice(io.start, io.end));
    io.start = io.end;
  }
  assert.deepEqual(
    sizes.slice(0, 6),
    [8 * KiB, 16 * KiB, 32 * KiB, 64 * KiB, 64 * KiB + 64, 64 * KiB + 64],
  );
  assert.deepEqual(conn.offered.slice(0, 6), sizes.slice(0, 6), "each read gets the whole buffer");
  assert.deepEqual(concatBytes(got), data);
});

Deno.test("BufferedConn: partial reads keep the size; a streak of small ones shrinks it, keeping unconsumed bytes", async () => {
  const big = pattern(8 * KiB + 16 * KiB + 32 * KiB + 20_000);
  const small = Array.from({ length: SHRINK_AFTER_READS + 2 }, (_, i) => pattern(100, i + 1));
  const conn = new ScriptedConn([big, ...small]);
  const io = new BufferedConn(conn.asConn(), { maxSize: 64 * KiB });
  for (let i = 0; i < 3; i++) {
    assert.ok(await io.fill());
    io.start = io.end;
  }
  assert.ok(await io.fill(), "a partial read, but not a small one");
  assert.equal(io.buf.length, 64 * KiB);
  assert.equal(io.buffered, 20_000);
  // Leave three bytes unconsumed before each small read: they must survive compaction and the shrink.
  const tail: Uint8Array[] = [];
  for (let i = 0; i < SHRINK_AFTER_READS; i++) {
    io.start = io.end - 3;
    tail.push(io.buf.slice(io.start, io.end));
    assert.ok(await io.fill());
    assert.equal(io.buf.length, 64 * KiB, `small read ${i + 1} keeps the buffer`);
    assert.deepEqual(io.buf.subarray(0, 3), tail[i]);
    assert.deepEqual(io.buf.subarray(3, io.end), small[i]);
  }
  io.start = io.end - 3;
  const kept = io.buf.slice(io.start, io.end);
  assert.ok(await io.fill());
  assert.equal(io.buf.length, 8 * KiB, "back to the initial size");
  assert.deepEqual(io.buf.subarray(0, io.end), concatBytes([kept, small[SHRINK_AFTER_READS]]));
});

Deno.test("BufferedConn: an HTTP head bigger than the initial buffer, with frame bytes in the same read", async () => {
  const head = `HTTP/1.1 101 Switching Protocols\r\nX-Filler: ${"a".repeat(12 * KiB)}`;
  const after = pattern(5000);
  const wire = concatBytes([enc.encode(head + "\r\n\r\n"), after]);
  const conn = new ScriptedConn([wire]);
  const io = new BufferedConn(conn.asConn());
  const got = await io.readHead(16 * KiB);
  assert.equal(dec.decode(got!), head);
  assert.deepEqual(conn.offered.slice(0, 2), [8 * KiB, 16 * KiB - 8 * KiB]);
  assert.equal(io.buf.length, 16 * KiB);
  const rest = [io.buf.slice(io.start, io.end)];
  io.start = io.end;
  while (await io.fill()) {
    rest.push(io.buf.slice(io.start, io.end));
    io.start = io.end;
  }
  assert.deepEqual(concatBytes(rest), after);
});

Deno.test("BufferedConn: a head over the limit is refused while the buffer grows", async () => {
  const conn = new ScriptedConn([enc.encode("GET / HTTP/1.1\r\nX: " + "b".repeat(40 * KiB))]);
  const io = new BufferedConn(conn.asConn());
  await assert.rejects(io.readHead(16 * KiB), { name: "HeadTooLargeError" });
});

// ---- WebSocketConn over a growing buffer ----

const MASK = new Uint8Array([0x12, 0x34, 0x56, 0x78]);

function clientFrame(op: number, data: Uint8Array, fin = true): Uint8Array {
  return encodeFrame(op, data, MASK, fin);
}

Deno.test("WebSocketConn over a growing buffer: frames straddling every boundary arrive intact", async () => {
  const sizes = [
    0,
    1,
    2,
    125,
    126,
    127,
    1000,
    8 * KiB - 7,
    8 * KiB - 6,
    8 * KiB,
    8 * KiB + 8,
    16 * KiB - 1,
    16 * KiB,
    16 * KiB + 1,
    32 * KiB,
    40_000,
    64 * KiB - 1,
    64 * KiB,
    64 * KiB + 64,
    70_000,
    200_000,
  ];
  const bulk = sizes.map((n, i) => pattern(n, i));
  const fragmented = pattern(50_000, 99);
  const tiny = Array.from({ length: 2 * SHRINK_AFTER_READS }, (_, i) => `t${i}`);
  const tail = [30_000, 100_000, 9000].map((n) => pattern(n, n));
  const expected: (string | Uint8Array)[] = [...bulk, fragmented, ...tiny, ...tail];

  const bulkWire = concatBytes([
    ...bulk.map((d) => clientFrame(OP_BINARY, d)),
    clientFrame(OP_BINARY, fragmented.subarray(0, 10_000), false),
    clientFrame(OP_CONTINUATION, fragmented.subarray(10_000, 10_001), false),
    clientFrame(OP_CONTINUATION, fragmented.subarray(10_001), true),
  ]);
  const tailWire = concatBytes([
    ...tail.map((d) => clientFrame(OP_BINARY, d)),
    clientFrame(OP_CLOSE, encodeClosePayload(1000, "bye")),
  ]);
  const chunks = [
    ...cut(bulkWire, [1, 13, 8 * KiB, 7, 16 * KiB + 3, 2, 65_600, 100, 50_000, 65_600, 9]),
    // One tiny message per read: a streak of small reads.
    ...tiny.map((t) => clientFrame(OP_TEXT, enc.encode(t))),
    ...cut(tailWire, [3, 70_000, 11, 8 * KiB]),
  ];
  const conn = new ScriptedConn(chunks);
  const io = new BufferedConn(conn.asConn());
  const ws = new WebSocketConn({
    io,
    role: "server",
    protocol: "",
    headers: new Headers(),
    remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
  });
  const seen: number[] = [];
  for (const [i, want] of expected.entries()) {
    const got = await ws.receive();
    assert.ok(got, `message ${i}`);
    if (typeof want === "string") assert.deepEqual(got, { type: "text", data: want });
    else {
      assert.equal(got.type, "binary", `message ${i}`);
      assert.deepEqual(got.data, want, `message ${i} (${want.length} bytes)`);
    }
    seen.push(io.buf.length);
  }
  assert.equal(await ws.receive(), null);
  assert.deepEqual(ws.closeInfo, { code: 1000, reason: "bye" });
  const afterBulk = bulk.length;
  assert.equal(Math.max(...seen.slice(0, afterBulk)), READ_BUFFER_SIZE, "grew to the max");
  assert.equal(seen[afterBulk + tiny.length - 1], READ_BUFFER_INITIAL, "shrank after the burst");
  ws.closeNow();
  await ws.closed;
});

// ---- FrameWriter scratch buffers ----

/** A conn whose writes complete only when the test says so, checked against the bytes then. */
class GatedConn {
  readonly writes: { data: Uint8Array; done: (n: number) => void }[] = [];
  #wake: (() => void) | null = null;

  write(p: Uint8Array): Promise<number> {
    return new Promise((resolve) => {
      // The view, not a copy: a scratch buffer reused too early would show here.
      this.writes.push({ data: p, done: resolve });
      this.#wake?.();
    });
  }

  async next(): Promise<{ data: Uint8Array; done: (n: number) => void }> {
    while (this.writes.length === 0) await new Promise<void>((r) => this.#wake = r);
    return this.writes.shift()!;
  }

  asConn(): Deno.Conn {
    return this as unknown as Deno.Conn;
  }
}

/** The payload of one whole frame, unmasked. */
function payloadOf(frame: Uint8Array): Uint8Array {
  const h = newFrameHeader();
  const masked = (frame[1] & 0x80) !== 0;
  assert.ok(parseFrameHeader(frame, 0, frame.length, masked, h));
  assert.equal(h.headerLength + h.payloadLength, frame.length);
  const body = frame.slice(h.headerLength);
  if (masked) applyMask(body, h.mask);
  return body;
}

for (const masked of [false, true]) {
  Deno.test(`FrameWriter (${masked ? "masked" : "unmasked"}): connections writing at once never share a scratch buffer`, async () => {
    const a = new GatedConn();
    const b = new GatedConn();
    const wa = new FrameWriter(new BufferedConn(a.asConn()), masked);
    const wb = new FrameWriter(new BufferedConn(b.asConn()), masked);
    const pa = pattern(40_000, 1);
    const pb = pattern(40_000, 2);
    const pc = pattern(2000, 3);
    const sa = wa.writeFrame(OP_BINARY, pa);
    const sb = wb.writeFrame(OP_BINARY, pb);
    const fa = await a.next();
    const fb = await b.next();
    assert.deepEqual(payloadOf(fb.data), pb);
    fb.done(fb.data.length);
    await sb;
    // B's scratch is free again: its next frame may reuse it while A's write is still pending.
    const sc = wb.writeFrame(OP_BINARY, pc);
    const fc = await b.next();
    assert.deepEqual(payloadOf(fc.data), pc);
    assert.deepEqual(payloadOf(fa.data), pa);
    fa.done(fa.data.length);
    fc.done(fc.data.length);
    await Promise.all([sa, sc]);
    // Small frames and the caller's payload stay untouched whatever the masking.
    const sd = wa.writeFrame(OP_TEXT, enc.encode("hi"));
    const fd = await a.next();
    fd.done(fd.data.length);
    await sd;
    assert.equal(dec.decode(payloadOf(fd.data)), "hi");
    assert.deepEqual(pa, pattern(40_000, 1));
  });
}
