/**
 * Mux test tools: a session pair over the in-memory fake socket, a session facing a raw peer that
 * writes and reads frames by hand, and byte helpers for whole-stream transfers.
 */
import assert from "node:assert/strict";
import { decodeFrame, FRAME_CREDIT, type MuxFrame } from "../../lib/mux/frame.ts";
import { MuxSession, type MuxSessionOptions } from "../../lib/mux/session.ts";
import type { MuxStream } from "../../lib/mux/stream.ts";
import type { MessageSocket, WsMessage } from "../../lib/ws/types.ts";
import { type FakeSocket, fakeSocketPair } from "./fake_socket.ts";

type Opts = Omit<MuxSessionOptions, "role">;

/** An opener and an acceptor session over a fake carrier pair (`a` is the opener's carrier). */
export function muxPair(opts: Opts = {}, acceptorOpts: Opts = opts) {
  const [a, b] = fakeSocketPair();
  const opener = new MuxSession(a, { ...opts, role: "opener" });
  const acceptor = new MuxSession(b, { ...acceptorOpts, role: "acceptor" });
  return { opener, acceptor, a, b };
}

/** Opens a stream and accepts its other end. */
export async function streamPair(
  opener: MuxSession,
  acceptor: MuxSession,
): Promise<[MuxStream, MuxStream]> {
  const mine = opener.open();
  const theirs = await acceptor.accept();
  assert.ok(theirs, "accept() ended");
  assert.equal(theirs.id, mine.id);
  return [mine, theirs];
}

/** A session whose carrier's other end is a raw fake socket the test scripts frame by frame. */
export function rawMux(role: "opener" | "acceptor", opts: Opts = {}) {
  const [carrier, raw] = fakeSocketPair();
  const session = new MuxSession(carrier, { ...opts, role });
  return {
    session,
    carrier,
    raw,
    send: (...frames: number[][]) => Promise.all(frames.map((f) => raw.send(new Uint8Array(f)))),
    /** The next frame the session sent; null at the carrier's Close. */
    next: async (): Promise<MuxFrame | null> => {
      const msg = await raw.receive();
      if (msg === null) return null;
      assert.equal(msg.type, "binary");
      return decodeFrame(msg.data);
    },
  };
}

/** The raw bytes of the session's next frame. */
export async function nextBytes(raw: FakeSocket): Promise<number[]> {
  const msg = await raw.receive();
  assert.ok(msg && msg.type === "binary", `expected a binary frame, got ${JSON.stringify(msg)}`);
  return [...msg.data];
}

/** Frame bytes: type, id (uint32 BE), payload. */
export function frame(type: number, id: number, ...payload: number[]): number[] {
  return [type, id >>> 24, (id >>> 16) & 0xff, (id >>> 8) & 0xff, id & 0xff, ...payload];
}

export function ascii(text: string): number[] {
  return [...new TextEncoder().encode(text)];
}

/** The CREDIT amounts a carrier sent for stream `id`, in order. */
export function credits(sent: WsMessage[], id: number): number[] {
  const out: number[] = [];
  for (const m of sent) {
    if (m.type !== "binary" || m.data[0] !== FRAME_CREDIT) continue;
    const f = decodeFrame(m.data);
    if (f.type === "credit" && f.id === id) out.push(f.bytes);
  }
  return out;
}

/** Sends `data` as binary messages of at most `chunk` bytes. */
export async function sendAll(ws: MessageSocket, data: Uint8Array, chunk = 32768): Promise<void> {
  for (let off = 0; off < data.length; off += chunk) {
    await ws.send(data.subarray(off, Math.min(data.length, off + chunk)));
  }
}

/** Receives binary messages until `n` bytes have arrived. */
export async function receiveBytes(ws: MessageSocket, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    const m = await ws.receive();
    assert.ok(m && m.type === "binary", `expected binary data at ${off}/${n}`);
    out.set(m.data, off);
    off += m.data.length;
  }
  return out;
}

/** Marks when a promise settles, so a test can tell it is still pending after other work. */
export function track<T>(p: Promise<T>): { settled: boolean; promise: Promise<T> } {
  const t = { settled: false, promise: p };
  p.then(() => t.settled = true, () => t.settled = true);
  return t;
}
