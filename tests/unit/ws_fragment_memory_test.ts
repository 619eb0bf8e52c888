// A message sent as millions of one-byte fragments must cost the receiver its bytes, not an object
// per fragment (issue 8, item 1).
//
// The flood runs in a child process of its own: RSS is per process, and `deno test --parallel` runs
// other test modules (ws_interop_test's 16 MiB echoes, say) on other threads of this one, whose
// memory would count as the receiver's.
import assert from "node:assert/strict";
import v8 from "node:v8";
import vm from "node:vm";
import { serveHttp } from "../../lib/ws/server.ts";
import type { WsMessage } from "../../lib/ws/types.ts";
import { OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG } from "../../lib/ws/frame.ts";
import { run, withDeadline } from "../helpers/proc.ts";

const FRAGMENTS = 2_000_000;
/** A Ping goes in after every this many fragments. */
const PING_EVERY = 250_000;
/** The Ping sent before the last fragment: its Pong proves every fragment before it was read. */
const PROBE = 0xaa;
/** RSS carries allocator and runtime noise of a few MiB whatever the message size. */
const RSS_SLACK = 8 * 1024 * 1024;
const MASK = [0x11, 0x22, 0x33, 0x44];
const enc = new TextEncoder();
/** Set in the child that runs the flood. */
const CHILD_ENV = "AZTUNNEL_WS_FRAGMENT_MEMORY_CHILD";

v8.setFlagsFromString("--expose-gc");
/** A full collection, so that only live memory is compared. */
const gc = vm.runInNewContext("gc") as () => void;

const payloadByte = (i: number) => (i * 31 + (i >>> 10)) & 0xff;

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.length;) off += await conn.write(data.subarray(off));
}

/** Masked client frame with a payload of at most 125 bytes. */
function frame(opcode: number, fin: boolean, payload: number[]): Uint8Array {
  return new Uint8Array([
    (fin ? 0x80 : 0) | opcode,
    0x80 | payload.length,
    ...MASK,
    ...payload.map((b, i) => b ^ MASK[i & 3]),
  ]);
}

/** Reads the server's (small, unmasked) frames until EOF; `onFrame` sees each one. */
async function readFrames(conn: Deno.Conn, onFrame: (opcode: number, payload: number[]) => void) {
  let pending: number[] = [];
  const buf = new Uint8Array(4096);
  for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
    pending = pending.concat(Array.from(buf.subarray(0, n)));
    while (pending.length >= 2 && pending.length >= 2 + (pending[1] & 0x7f)) {
      const len = pending[1] & 0x7f;
      onFrame(pending[0] & 0x0f, pending.slice(2, 2 + len));
      pending = pending.slice(2 + len);
    }
  }
}

/** One-byte fragments `from..to` of the message (with a Ping every PING_EVERY), chunk by chunk. */
async function sendFragments(conn: Deno.Conn, from: number, to: number): Promise<void> {
  const chunk = new Uint8Array(7 * 8192 + 64);
  let i = from;
  while (i < to) {
    let pos = 0;
    while (pos + 14 <= chunk.length && i < to) {
      if (i > 0 && i % PING_EVERY === 0) {
        chunk.set(frame(OP_PING, true, [i / PING_EVERY]), pos);
        pos += 7;
      }
      chunk[pos++] = (i === FRAGMENTS - 1 ? 0x80 : 0) | (i === 0 ? OP_BINARY : OP_CONTINUATION);
      chunk[pos++] = 0x80 | 1;
      chunk.set(MASK, pos);
      pos += 4;
      chunk[pos++] = payloadByte(i) ^ MASK[0];
      i++;
    }
    await writeAll(conn, chunk.subarray(0, pos));
  }
}

async function upgrade(conn: Deno.Conn): Promise<void> {
  await writeAll(
    conn,
    enc.encode(
      "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ),
  );
  // The server sends nothing after its 101 until it reads a frame, so this read ends at the head.
  let head = "";
  const buf = new Uint8Array(4096);
  while (!head.includes("\r\n\r\n")) {
    const n = await conn.read(buf);
    assert.ok(n !== null, "server closed during the handshake");
    head += new TextDecoder().decode(buf.subarray(0, n));
  }
  assert.match(head, /^HTTP\/1\.1 101 /);
}

function deferred<T>() {
  let resolve: (v: T) => void = () => {};
  const promise = new Promise<T>((r) => resolve = r);
  return { promise, resolve };
}

/** The whole check, in the child: it throws (and the child exits non-zero) when one fails. */
async function flood(): Promise<void> {
  const warmedUp = deferred<void>();
  const received = deferred<WsMessage | null>();
  const server = serveHttp({
    listener: Deno.listen({ hostname: "127.0.0.1", port: 0 }),
    handler: async (req) => {
      const ws = await req.upgrade({ maxMessageSize: 4 * FRAGMENTS });
      // A first flood warms up the JIT and the heap, so the comparison below is steady.
      const first = await ws.receive();
      assert.equal(first?.data.length, FRAGMENTS);
      warmedUp.resolve();
      received.resolve(await ws.receive());
      await ws.close();
    },
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  const pongs: number[][] = [];
  const probed = deferred<void>();
  let lastOpcode = -1;
  let reading: Promise<void> = Promise.resolve();
  try {
    await upgrade(conn);
    reading = readFrames(conn, (opcode, payload) => {
      lastOpcode = opcode;
      if (opcode !== OP_PONG) return;
      pongs.push(payload);
      if (payload[0] === PROBE) probed.resolve();
    });
    await sendFragments(conn, 0, FRAGMENTS);
    await withDeadline(warmedUp.promise, 30_000, "warm-up message");
    gc();
    const before = Deno.memoryUsage();

    // All but the last fragment, then a Ping: its Pong means the receiver holds the whole
    // unfinished message, which is when fragments cost the most.
    await sendFragments(conn, 0, FRAGMENTS - 1);
    await writeAll(conn, frame(OP_PING, true, [PROBE]));
    await withDeadline(probed.promise, 30_000, "pong for the probe");
    gc();
    const during = Deno.memoryUsage();
    const js = during.heapUsed + during.external - before.heapUsed - before.external;
    assert.ok(js < 2 * FRAGMENTS, `receiver heap+external grew ${js} bytes for ${FRAGMENTS}`);
    const rss = during.rss - before.rss;
    assert.ok(rss < 2 * FRAGMENTS + RSS_SLACK, `receiver RSS grew ${rss} bytes for ${FRAGMENTS}`);

    await sendFragments(conn, FRAGMENTS - 1, FRAGMENTS);
    const msg = await withDeadline(received.promise, 30_000, "reassembled message");
    assert.ok(msg !== null && msg.type === "binary");
    assert.equal(msg.data.length, FRAGMENTS);
    for (let i = 0; i < FRAGMENTS; i++) {
      if (msg.data[i] !== payloadByte(i)) assert.fail(`byte ${i} differs`);
    }
    // Answer the server's Close so its close() completes, then read to EOF.
    await writeAll(conn, frame(OP_CLOSE, true, []));
    await withDeadline(reading, 10_000, "server frames");
  } finally {
    conn.close();
    await reading.catch(() => {});
    await server.close();
  }
  // Pings in the middle of a message are answered (only the latest one needs a Pong).
  assert.ok(pongs.some((p) => p[0] === Math.floor((FRAGMENTS - 1) / PING_EVERY)));
  assert.deepEqual(pongs.at(-1), [PROBE]);
  assert.equal(lastOpcode, OP_CLOSE);
}

if (Deno.env.get(CHILD_ENV) === "1") {
  await flood();
} else {
  Deno.test("2M one-byte fragments: receiver memory grows with the bytes, not the fragments; byte-exact; pings answered", async () => {
    const res = await run(
      Deno.execPath(),
      [
        "run",
        "--allow-net=127.0.0.1",
        "--allow-env",
        decodeURIComponent(new URL(import.meta.url).pathname),
      ],
      { env: { [CHILD_ENV]: "1" }, deadlineMs: 120_000 },
    );
    assert.equal(res.code, 0, `the flood failed:\n${res.stderr}`);
  });
}
