import assert from "node:assert/strict";
import {
  decodeFrame,
  encodeFrame,
  MUX_HEADER_BYTES,
  MUX_MAX_FRAME,
  MUX_MAX_MESSAGE,
  MUX_MAX_WINDOW,
  MUX_WINDOW,
  MuxError,
  type MuxFrame,
} from "../../lib/mux/frame.ts";

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join(" ");

Deno.test("mux frame: constants", () => {
  assert.equal(MUX_HEADER_BYTES, 5);
  assert.equal(MUX_MAX_MESSAGE, 32768);
  assert.equal(MUX_MAX_FRAME, 5 + 32768);
  assert.equal(MUX_WINDOW, 256 * 1024);
  assert.equal(MUX_MAX_WINDOW, 16 * 1024 * 1024);
});

const cases: [MuxFrame, string][] = [
  [{ type: "open", id: 1 }, "01 00 00 00 01"],
  [{ type: "text", id: 2, data: "hé", size: 3 }, "02 00 00 00 02 68 c3 a9"],
  [{ type: "binary", id: 0x01020304, data: new Uint8Array([0, 255]) }, "03 01 02 03 04 00 ff"],
  [{ type: "binary", id: 7, data: new Uint8Array(0) }, "03 00 00 00 07"],
  [{ type: "credit", id: 3, bytes: 65536 }, "04 00 00 00 03 00 01 00 00"],
  [{ type: "close", id: 4, code: 1000, reason: "ok" }, "05 00 00 00 04 03 e8 6f 6b"],
  [{ type: "close", id: 5, code: 1005, reason: "" }, "05 00 00 00 05"],
  [{ type: "reset", id: 0xffffffff }, "06 ff ff ff ff"],
  [{ type: "blocked", id: 9 }, "07 00 00 00 09"],
];

Deno.test("mux frame: every type encodes to exact bytes and decodes back", () => {
  for (const [f, bytes] of cases) {
    const wire = encodeFrame(f);
    assert.equal(hex(wire), bytes, f.type);
    assert.deepEqual(decodeFrame(wire), f, f.type);
  }
});

Deno.test("mux frame: a data frame of exactly 32768 bytes is the largest", () => {
  const wire = encodeFrame({ type: "binary", id: 1, data: new Uint8Array(MUX_MAX_MESSAGE) });
  assert.equal(wire.length, MUX_MAX_FRAME);
  assert.equal(decodeFrame(wire).type, "binary");
  assert.throws(
    () => encodeFrame({ type: "binary", id: 1, data: new Uint8Array(MUX_MAX_MESSAGE + 1) }),
    (e: unknown) => e instanceof MuxError && e.code === "mux_too_big",
  );
});

Deno.test("mux frame: decoding is a view at any offset", () => {
  const outer = new Uint8Array([9, 9, 3, 0, 0, 0, 1, 42]);
  assert.deepEqual(decodeFrame(outer.subarray(2)), {
    type: "binary",
    id: 1,
    data: new Uint8Array([42]),
  });
});

Deno.test("mux frame: malformed frames are protocol errors", () => {
  const bad: [number[], RegExp][] = [
    [[1, 0, 0, 1], /short frame/],
    [[1, 0, 0, 0, 0], /stream id 0/],
    [[8, 0, 0, 0, 1], /unknown frame type 8/],
    [[7, 0, 0, 0, 1, 0], /payload on type 7/],
    [[0, 0, 0, 0, 1], /unknown frame type 0/],
    [[1, 0, 0, 0, 1, 0], /payload on type 1/],
    [[6, 0, 0, 0, 1, 0], /payload on type 6/],
    [[4, 0, 0, 0, 1, 0, 0, 1], /credit payload of 3 bytes/],
    [[5, 0, 0, 0, 1, 3], /close payload of 1 byte/],
    [[5, 0, 0, 0, 1, 3, 0xee], /invalid close code 1006/],
    [[5, 0, 0, 0, 1, 3, 0xe8, 0xff], /close reason is not valid UTF-8/],
    [[2, 0, 0, 0, 1, 0xc3], /not valid UTF-8/],
    [[3, 0, 0, 0, 1, ...new Uint8Array(MUX_MAX_MESSAGE + 1)], /payload of 32769 bytes/],
  ];
  for (const [bytes, re] of bad) {
    assert.throws(
      () => decodeFrame(new Uint8Array(bytes)),
      (e: unknown) => e instanceof MuxError && e.code === "mux_protocol" && re.test(e.message),
      `${bytes.slice(0, 8)}`,
    );
  }
});

Deno.test("mux frame: encoding refuses what may not be sent", () => {
  assert.throws(() => encodeFrame({ type: "open", id: 0 }), RangeError);
  assert.throws(() => encodeFrame({ type: "open", id: 2 ** 32 }), RangeError);
  assert.throws(() => encodeFrame({ type: "close", id: 1, code: 999, reason: "" }), RangeError);
  assert.throws(
    () => encodeFrame({ type: "close", id: 1, code: 1000, reason: "x".repeat(124) }),
    RangeError,
  );
  assert.throws(() => encodeFrame({ type: "credit", id: 1, bytes: -1 }), RangeError);
});
