// lib/ws/message_reader.ts: frames in, whole messages and control frames out, over a real socket.
import assert from "node:assert/strict";
import { writeAll } from "../../lib/net/write_all.ts";
import {
  encodeFrame,
  FrameError,
  OP_BINARY,
  OP_CLOSE,
  OP_CONTINUATION,
  OP_PING,
  OP_PONG,
  OP_TEXT,
} from "../../lib/ws/frame.ts";
import { BufferedConn, UnexpectedEofError } from "../../lib/ws/io.ts";
import { MessageReader } from "../../lib/ws/message_reader.ts";
import { tcpPair } from "../helpers/servers.ts";

const enc = new TextEncoder();
const MASK = new Uint8Array([9, 8, 7, 6]);

async function withReader(
  fn: (reader: MessageReader, peer: Deno.TcpConn) => Promise<void>,
  opts: { expectMasked?: boolean; maxMessageSize?: number } = {},
): Promise<void> {
  const [local, peer] = await tcpPair();
  try {
    const reader = new MessageReader(
      new BufferedConn(local),
      opts.expectMasked ?? true,
      opts.maxMessageSize ?? 1 << 20,
    );
    await fn(reader, peer);
  } finally {
    local.close();
    peer.close();
  }
}

Deno.test("MessageReader: control frames come out between the fragments they interrupt", async () => {
  await withReader(async (reader, peer) => {
    await writeAll(peer, encodeFrame(OP_TEXT, enc.encode("he"), MASK, false));
    await writeAll(peer, encodeFrame(OP_PING, enc.encode("p"), MASK));
    await writeAll(peer, encodeFrame(OP_CONTINUATION, enc.encode("llo"), MASK, true));
    await writeAll(peer, encodeFrame(OP_PONG, new Uint8Array(0), MASK));
    const big = new Uint8Array(100_000).map((_, i) => i & 0xff);
    await writeAll(peer, encodeFrame(OP_BINARY, big.subarray(0, 40_000), MASK, false));
    await writeAll(peer, encodeFrame(OP_CONTINUATION, big.subarray(40_000), MASK, true));
    await writeAll(peer, encodeFrame(OP_CLOSE, new Uint8Array([0x03, 0xe8]), MASK));
    const ping = await reader.read();
    assert.equal(ping.type, "ping");
    assert.ok(ping.type === "ping");
    assert.deepEqual(ping.payload, enc.encode("p"));
    assert.deepEqual(await reader.read(), { type: "text", data: "hello" });
    assert.deepEqual(await reader.read(), { type: "pong", payload: new Uint8Array(0) });
    const bin = await reader.read();
    assert.ok(bin.type === "binary");
    assert.deepEqual(bin.data, big);
    assert.deepEqual(await reader.read(), {
      type: "close",
      payload: new Uint8Array([0x03, 0xe8]),
    });
  });
});

Deno.test("MessageReader: protocol violations are FrameErrors with their Close code", async () => {
  const cases: [string, Uint8Array[], number, boolean?][] = [
    ["unmasked frame to a server", [encodeFrame(OP_TEXT, enc.encode("x"), null)], 1002],
    ["masked frame to a client", [encodeFrame(OP_TEXT, enc.encode("x"), MASK)], 1002, false],
    ["continuation first", [encodeFrame(OP_CONTINUATION, enc.encode("x"), MASK)], 1002],
    ["bad UTF-8", [encodeFrame(OP_TEXT, new Uint8Array([0xc3, 0x28]), MASK)], 1007],
    ["too big", [encodeFrame(OP_BINARY, new Uint8Array(65), MASK)], 1009],
    [
      "too big across fragments",
      [
        encodeFrame(OP_BINARY, new Uint8Array(40), MASK, false),
        encodeFrame(OP_CONTINUATION, new Uint8Array(40), MASK, true),
      ],
      1009,
    ],
  ];
  for (const [name, frames, code, expectMasked] of cases) {
    await withReader(async (reader, peer) => {
      for (const f of frames) await writeAll(peer, f);
      const err = await reader.read().catch((e) => e);
      assert.ok(err instanceof FrameError, `${name}: ${err}`);
      assert.equal(err.closeCode, code, name);
    }, { expectMasked, maxMessageSize: 64 });
  }
});

Deno.test("MessageReader: EOF inside a frame or before a Close is UnexpectedEofError", async () => {
  await withReader(async (reader, peer) => {
    const frame = encodeFrame(OP_BINARY, new Uint8Array(10), MASK);
    await writeAll(peer, frame.subarray(0, 8));
    await peer.closeWrite();
    const err = await reader.read().catch((e) => e);
    assert.ok(err instanceof UnexpectedEofError);
    assert.match(err.message, /inside a frame/);
  });
  await withReader(async (reader, peer) => {
    await peer.closeWrite();
    const err = await reader.read().catch((e) => e);
    assert.ok(err instanceof UnexpectedEofError);
    assert.match(err.message, /without a Close frame/);
  });
});
