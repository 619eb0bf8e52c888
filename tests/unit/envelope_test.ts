import assert from "node:assert/strict";
import {
  clipForLog,
  decodeEnvelope,
  decodeResponse,
  encodeEnvelope,
  encodeResponse,
  EnvelopeDecodeError,
  FEATURES,
  featuresMetadata,
  negotiate,
  offeredFeatures,
} from "../../lib/tunnel/envelope.ts";

Deno.test("encodeEnvelope: Go's field order, empty optionals omitted", () => {
  assert.equal(
    encodeEnvelope({ version: 1, target: "10.0.0.5:22", bridge_id: "K3J5Q2XW7ZPA4MNB" }),
    '{"version":1,"target":"10.0.0.5:22","bridge_id":"K3J5Q2XW7ZPA4MNB"}',
  );
  assert.equal(
    encodeEnvelope({ version: 1, target: "[::1]:22", metadata: {}, bridge_id: "" }),
    '{"version":1,"target":"[::1]:22"}',
  );
  assert.equal(
    encodeEnvelope({
      version: 1,
      target: "db:5432",
      metadata: featuresMetadata(FEATURES),
      bridge_id: "AAAAAAAAAAAAAAAA",
    }),
    '{"version":1,"target":"db:5432",' +
      '"metadata":{"x-aztunnel-features":"half-close,warm,early-data,mux"},' +
      '"bridge_id":"AAAAAAAAAAAAAAAA"}',
  );
});

Deno.test("encodeResponse: ok, failure with code, features last", () => {
  assert.equal(
    encodeResponse({ version: 1, ok: true, listener_id: "L2345678ABCDEFGH" }),
    '{"version":1,"ok":true,"listener_id":"L2345678ABCDEFGH"}',
  );
  assert.equal(
    encodeResponse({
      version: 1,
      ok: false,
      error: "connection failed",
      code: "connection_refused",
      listener_id: "L2345678ABCDEFGH",
    }),
    '{"version":1,"ok":false,"error":"connection failed","code":"connection_refused",' +
      '"listener_id":"L2345678ABCDEFGH"}',
  );
  assert.equal(
    encodeResponse({ version: 1, ok: true, listener_id: "L", features: ["half-close"] }),
    '{"version":1,"ok":true,"listener_id":"L","features":["half-close"]}',
  );
  assert.equal(
    encodeResponse({ version: 1, ok: true, features: [] }),
    '{"version":1,"ok":true}',
  );
  assert.equal(
    encodeResponse({ version: 1, ok: false, error: "target not allowed", code: "" }),
    '{"version":1,"ok":false,"error":"target not allowed"}',
  );
});

Deno.test("decodeEnvelope: Go json semantics", () => {
  assert.deepEqual(
    decodeEnvelope('{"version":1,"target":"10.0.0.5:22","bridge_id":"K3J5Q2XW7ZPA4MNB"}'),
    { version: 1, target: "10.0.0.5:22", bridge_id: "K3J5Q2XW7ZPA4MNB" },
  );
  // Keys are matched case-insensitively; unknown fields are ignored.
  assert.deepEqual(decodeEnvelope('{"VERSION":1,"Target":"a:1","extra":[1,2]}'), {
    version: 1,
    target: "a:1",
  });
  // A missing version reads as 0, null leaves a field unset, JSON null is an empty envelope.
  assert.deepEqual(decodeEnvelope('{"target":"a:1"}'), { version: 0, target: "a:1" });
  assert.deepEqual(decodeEnvelope('{"version":null,"target":null}'), { version: 0, target: "" });
  assert.deepEqual(decodeEnvelope("null"), { version: 0, target: "" });
  assert.deepEqual(
    decodeEnvelope('{"version":1,"target":"a:1","metadata":{"x-aztunnel-features":"half-close"}}'),
    { version: 1, target: "a:1", metadata: { "x-aztunnel-features": "half-close" } },
  );
  for (
    const bad of [
      "not json",
      "",
      "[1]",
      '"text"',
      "5",
      '{"version":"1"}',
      '{"version":1.5}',
      '{"target":5}',
      '{"metadata":{"a":1}}',
      '{"metadata":[]}',
      '{"bridge_id":true}',
    ]
  ) {
    assert.throws(() => decodeEnvelope(bad), EnvelopeDecodeError, bad);
  }
});

Deno.test("decodeResponse: fields, defaults and type errors", () => {
  assert.deepEqual(
    decodeResponse('{"version":1,"ok":true,"listener_id":"L","features":["half-close","x"]}'),
    { version: 1, ok: true, listener_id: "L", features: ["half-close", "x"] },
  );
  assert.deepEqual(
    decodeResponse('{"ok":false,"error":"connection failed","code":"timeout","future":{}}'),
    { version: 0, ok: false, error: "connection failed", code: "timeout" },
  );
  assert.deepEqual(decodeResponse("{}"), { version: 0, ok: false });
  assert.throws(() => decodeResponse("{"), EnvelopeDecodeError);
  assert.throws(() => decodeResponse('{"ok":"true"}'), EnvelopeDecodeError);
  assert.throws(() => decodeResponse('{"features":"half-close"}'), EnvelopeDecodeError);
});

Deno.test("feature negotiation: comma list offered, intersection used", () => {
  assert.deepEqual(FEATURES, ["half-close", "warm", "early-data", "mux"]);
  assert.deepEqual(featuresMetadata([]), {});
  assert.deepEqual(offeredFeatures({ version: 1, target: "a:1" }), []);
  assert.deepEqual(
    offeredFeatures({
      version: 1,
      target: "a:1",
      metadata: { "x-aztunnel-features": " half-close , zstd,," },
    }),
    ["half-close", "zstd"],
  );
  assert.deepEqual(negotiate(FEATURES, ["zstd", "half-close"]), ["half-close"]);
  assert.deepEqual(negotiate(FEATURES, ["zstd"]), []);
  assert.deepEqual(negotiate(FEATURES, ["mux", "warm"]), ["warm", "mux"]);
  assert.deepEqual(negotiate([], ["half-close"]), []);
});

Deno.test("decodeEnvelope: a version written 1.0 or 1e0 is refused, as Go's int field refuses it", () => {
  for (const v of ["1.0", "1e0", "1E0", "1e+0", "10e-1", "-0.0", "1.5"]) {
    assert.throws(
      () => decodeEnvelope(`{"version":${v},"target":"a:1"}`),
      new EnvelopeDecodeError(`cannot decode JSON number ${v} into field version`),
      v,
    );
  }
  assert.throws(
    () => decodeResponse('{"version":1.0,"ok":true}'),
    new EnvelopeDecodeError("cannot decode JSON number 1.0 into field version"),
  );
  assert.throws(() => decodeEnvelope("1.0"), /cannot decode JSON number 1\.0 into an object/);
  assert.throws(() => decodeEnvelope('{"metadata":{"a":1.0}}'), /into field metadata/);
  assert.throws(() => decodeEnvelope('{"metadata":1.0}'), /into field metadata/);
  // Integer tokens pass, and unknown fields may hold any number.
  assert.deepEqual(decodeEnvelope('{"version":1,"target":"a:1","x":[1.0,2e5]}'), {
    version: 1,
    target: "a:1",
  });
  // The message quotes a bounded part of the token.
  const long = "1." + "0".repeat(10_000);
  assert.throws(
    () => decodeEnvelope(`{"version":${long}}`),
    new EnvelopeDecodeError(`cannot decode JSON number ${long.slice(0, 24)} into field version`),
  );
});

Deno.test("clipForLog keeps short strings and cuts long ones to 256 characters", () => {
  assert.equal(clipForLog("10.0.0.5:22"), "10.0.0.5:22");
  assert.equal(clipForLog("x".repeat(256)), "x".repeat(256));
  assert.equal(clipForLog("y".repeat(20_000)), "y".repeat(256) + "… (20000 chars)");
});
