import assert from "node:assert/strict";
import type { MuxStream } from "../../lib/mux/stream.ts";
import { MUX_MAX_WINDOW, MUX_MIN_WINDOW } from "../../lib/mux/frame.ts";
import { ascii, frame, nextBytes, rawMux } from "../helpers/mux.ts";
import type { Attrs, Logger } from "../../lib/observe/log.ts";
import { rejectsWith } from "../helpers/ws_peers.ts";

type Raw = ReturnType<typeof rawMux>;

/** A Logger that keeps its DEBUG lines. */
function recordingLogger(lines: [string, Attrs | undefined][]): Logger {
  const logger: Logger = {
    debug: (msg, attrs) => lines.push([msg, attrs]),
    info: () => {},
    warn: () => {},
    error: () => {},
    with: () => logger,
  };
  return logger;
}

/**
 * Runs `script` against a session (window MUX_MIN_WINDOW: one 32768-byte message); it must end the carrier with 1002 "mux protocol
 * error", fail the streams `script` returned and end the session.
 */
async function protocolError(
  role: "opener" | "acceptor",
  script: (m: Raw) => Promise<MuxStream[]>,
  closeCode = 1006,
): Promise<void> {
  const m = rawMux(role, { windowBytes: MUX_MIN_WINDOW });
  const streams = await script(m);
  const pending = streams.map((s) => rejectsWith(s.receive(), "connection_lost"));
  while (await m.next() !== null) { /* frames sent before the error */ }
  assert.deepEqual(m.raw.closeInfo, { code: 1002, reason: "mux protocol error" });
  await Promise.all(pending);
  // 1006 as on a dropped socket, unless the peer's CLOSE had come (it stays, as in conn.ts).
  for (const s of streams) assert.deepEqual(s.closeInfo, { code: closeCode, reason: "" });
  assert.equal(m.session.ended, true);
  if (role === "acceptor") assert.equal(await m.session.accept(), null);
  await m.raw.close(1002, "");
  await m.session.done;
  assert.equal(m.session.streams, 0);
}

/** The acceptor side after OPEN 1, with stream 1 accepted. */
/** Ends the session from its side; the raw peer answers the carrier's Close. */
async function closeBoth(m: Raw): Promise<void> {
  const closing = m.session.close();
  while (await m.next() !== null) { /* until the Close */ }
  await m.raw.close();
  await closing;
  await m.session.done;
}

async function opened(m: Raw): Promise<MuxStream> {
  await m.send(frame(1, 1));
  const s = await m.session.accept();
  assert.ok(s);
  return s;
}

const acceptorCases: [string, (m: Raw) => Promise<MuxStream[]>, number?][] = [
  ["a TEXT carrier message", async (m) => {
    const s = await opened(m);
    await m.raw.send("hello");
    return [s];
  }],
  ["an unknown frame type", async (m) => {
    const s = await opened(m);
    await m.send([8, 0, 0, 0, 1]);
    return [s];
  }],
  ["a short frame", async (m) => {
    const s = await opened(m);
    await m.send([3, 0, 0, 1]);
    return [s];
  }],
  ["a payload over 32768", async (m) => {
    const s = await opened(m);
    await m.send(frame(3, 1, ...new Uint8Array(32769)));
    return [s];
  }],
  ["an OPEN id not above the last one", async (m) => {
    await m.send(frame(1, 2));
    const s = (await m.session.accept())!;
    await m.send(frame(1, 1));
    return [s];
  }],
  ["a repeated OPEN id", async (m) => {
    const s = await opened(m);
    await m.send(frame(1, 1));
    return [s];
  }],
  ["data after the peer's own CLOSE", async (m) => {
    const s = await opened(m);
    await m.send(frame(5, 1, 0x03, 0xe8), frame(3, 1, 0));
    return [s];
  }, 1000],
  ["a second CLOSE", async (m) => {
    const s = await opened(m);
    await m.send(frame(5, 1), frame(5, 1));
    return [s];
  }, 1005],
  ["a frame for a stream never opened", async (m) => {
    const s = await opened(m);
    await m.send(frame(3, 2, 0));
    return [s];
  }],
  ["more data than the window", async (m) => {
    const s = await opened(m);
    await m.send(frame(3, 1, ...new Uint8Array(32768)), frame(2, 1, ...ascii("x")));
    return [s];
  }],
  ["invalid UTF-8 in a TEXT frame", async (m) => {
    const s = await opened(m);
    await m.send(frame(2, 1, 0xff));
    return [s];
  }],
];

for (const [name, script, closeCode] of acceptorCases) {
  Deno.test(`mux protocol: acceptor fails the carrier on ${name}`, () =>
    protocolError("acceptor", script, closeCode));
}

Deno.test("mux protocol: opener fails the carrier on an OPEN from the acceptor", () =>
  protocolError("opener", async (m) => {
    const s = m.session.open();
    await m.send(frame(1, 2));
    return [s];
  }));

Deno.test("mux protocol: opener fails the carrier on credit beyond MUX_MAX_WINDOW", () =>
  protocolError("opener", async (m) => {
    const s = m.session.open();
    const fits = MUX_MAX_WINDOW - MUX_MIN_WINDOW;
    await m.send(frame(4, 1, fits >>> 24, (fits >>> 16) & 0xff, (fits >>> 8) & 0xff, fits & 0xff));
    await s.send(new Uint8Array(1)); // the session took it: window 16 MiB - 65 (1 + 64 cost)
    await m.send(frame(4, 1, 0, 0, 0, 65)); // exactly 16 MiB again
    await m.send(frame(4, 1, 0, 0, 0, 1));
    return [s];
  }));

Deno.test("mux protocol: opener fails the carrier on a frame for an id it never opened", () =>
  protocolError("opener", async (m) => {
    const s = m.session.open();
    await m.send(frame(4, 2, 0, 0, 0, 1));
    return [s];
  }));

Deno.test("mux protocol: the error is logged at DEBUG with its reason", async () => {
  const lines: [string, Attrs | undefined][] = [];
  const m = rawMux("acceptor", { logger: recordingLogger(lines) });
  await m.send([9, 0, 0, 0, 1]);
  assert.equal(await m.next(), null);
  await m.raw.close();
  await m.session.done;
  assert.deepEqual(lines, [
    ["mux protocol error", { reason: "unknown frame type 9" }],
    ["mux session ended", { reason: "protocol error", streams: 0 }],
  ]);
});

Deno.test("mux protocol: late frames for a released stream are ignored", async () => {
  const m = rawMux("acceptor");
  const s = await opened(m);
  s.closeNow();
  assert.deepEqual(await nextBytes(m.raw), frame(6, 1));
  await m.send(frame(3, 1, 1), frame(4, 1, 0, 0, 0, 9), frame(5, 1), frame(6, 1), frame(1, 2));
  const next = await m.session.accept();
  assert.equal(next?.id, 2);
  assert.equal(m.session.ended, false);
  await m.send(frame(2, 2, ...ascii("hi")));
  assert.deepEqual(await next.receive(), { type: "text", data: "hi" });
  // 2 bytes and the 64 every message costs: CREDIT 66.
  assert.deepEqual(await nextBytes(m.raw), frame(4, 2, 0, 0, 0, 66));
  await closeBoth(m);
});

Deno.test("mux protocol: an OPEN beyond maxStreams gets CLOSE 1013 and is never surfaced", async () => {
  const counts: number[] = [];
  const m = rawMux("acceptor", { maxStreams: 2, onStreamsChange: (n) => counts.push(n) });
  await m.send(frame(1, 1), frame(1, 2), frame(1, 3));
  // 05 | 00 00 00 03 | 03 f5 (1013) | "too many streams"
  assert.deepEqual(await nextBytes(m.raw), [
    5,
    0,
    0,
    0,
    3,
    0x03,
    0xf5,
    ...ascii("too many streams"),
  ]);
  const first = (await m.session.accept())!;
  assert.equal((await m.session.accept())?.id, 2);
  assert.equal(m.session.streams, 2);
  // The refused id is answered, so the opener's CLOSE and data for it are late frames.
  await m.send(frame(3, 3, 1), frame(5, 3));
  first.closeNow();
  assert.deepEqual(await nextBytes(m.raw), frame(6, 1));
  await m.send(frame(1, 4));
  assert.equal((await m.session.accept())?.id, 4);
  assert.deepEqual(counts, [1, 2, 1, 2]);
  const last = m.session.accept();
  await closeBoth(m);
  assert.equal(await last, null);
});

Deno.test("mux protocol: an opener flooding OPENs past maxStreams without reading the refusals is cut", async () => {
  const m = rawMux("acceptor", { maxStreams: 1 });
  const first = await opened(m);
  const lost = rejectsWith(first.receive(), "connection_lost");
  // The raw peer reads nothing: the 1013 answers back up in the carrier, then the session gives up.
  let id = 2;
  for (; id < 1000 && !m.session.ended; id++) await m.send(frame(1, id));
  assert.equal(m.session.ended, true, "cut before 1000 OPENs");
  let refusals = 0;
  for (let f = await m.next(); f !== null; f = await m.next()) {
    if (f.type === "close" && f.code === 1013) refusals++;
  }
  assert.ok(refusals < id - 2, `${refusals} refusals for ${id - 2} refused OPENs`);
  assert.deepEqual(m.raw.closeInfo, { code: 1002, reason: "mux protocol error" });
  await lost;
  await m.raw.close(1002, "");
  await m.session.done;
});

Deno.test("mux protocol: a CREDIT of 0 is a protocol error", () =>
  protocolError("opener", async (m) => {
    const s = m.session.open();
    await m.send(frame(4, 1, 0, 0, 0, 0));
    return [s];
  }));

Deno.test("mux protocol: empty messages on an unread stream cost window too: a flood is cut", async () => {
  const m = rawMux("acceptor");
  const s = await opened(m);
  let sent = 0;
  for (; sent < 10_000 && !m.session.ended; sent++) await m.send(frame(3, 1));
  // 256 KiB at 64 bytes a message: the 4097th is past the window (this loop sees the end up to
  // the fake carrier's 64 buffered messages later).
  assert.ok(sent >= 4097 && sent <= 4097 + 65, `cut after ${sent}`);
  while (await m.next() !== null) { /* until the Close */ }
  assert.deepEqual(m.raw.closeInfo, { code: 1002, reason: "mux protocol error" });
  await rejectsWith(s.receive(), "connection_lost");
  await m.raw.close(1002, "");
  await m.session.done;
});

Deno.test("mux protocol: a peer that never reads gets at most one CREDIT in flight per stream", async () => {
  const m = rawMux("acceptor", { windowBytes: MUX_MIN_WINDOW });
  const s = await opened(m);
  // The peer sends as if every credit had reached it, and the reader takes each message at once.
  for (let i = 0; i < 3000 && !m.session.ended; i++) {
    await m.send(frame(3, 1, 7));
    if (m.session.ended) break;
    await s.receive().catch(() => null);
  }
  const creditFrames = m.carrier.sent.filter((f) => f.type === "binary" && f.data[0] === 4);
  // The fake carrier holds 64 unread messages before a send waits: 65 out, one waiting.
  assert.ok(creditFrames.length <= 66, `${creditFrames.length} CREDIT frames`);
  assert.equal(m.session.ended, true, "the peer overran the credit it never got");
  while (await m.next() !== null) { /* until the Close */ }
  await m.raw.close(1002, "");
  await m.session.done;
});
