import assert from "node:assert/strict";
import {
  decodeHello,
  encodeHello,
  FEATURE_EARLY_DATA,
  FEATURE_WARM,
  isWarmLeg,
  WARM_LEG_HEADER,
  WARM_LEG_VALUE,
} from "../../lib/tunnel/warm.ts";

Deno.test("warm: the protocol's names", () => {
  assert.equal(WARM_LEG_HEADER, "Aztunnel-Leg");
  assert.equal(WARM_LEG_VALUE, "warm");
  assert.equal(FEATURE_WARM, "warm");
  assert.equal(FEATURE_EARLY_DATA, "early-data");
});

Deno.test("isWarmLeg: header name in any case, value warm", () => {
  assert.equal(isWarmLeg({ "Aztunnel-Leg": "warm" }), true);
  assert.equal(isWarmLeg({ "aztunnel-leg": "warm" }), true);
  assert.equal(isWarmLeg({ "AZTUNNEL-LEG": " warm " }), true);
  assert.equal(isWarmLeg({ "Other": "x", "Aztunnel-Leg": "warm" }), true);
  assert.equal(isWarmLeg({ "Aztunnel-Leg": "cold" }), false);
  assert.equal(isWarmLeg({ "Aztunnel-Leg": "" }), false);
  assert.equal(isWarmLeg({ "Aztunnel-Legs": "warm" }), false);
  assert.equal(isWarmLeg({}), false);
  assert.equal(isWarmLeg(undefined), false);
});

Deno.test("encodeHello: the exact bytes of the protocol", () => {
  assert.equal(
    encodeHello({ listener_id: "L1", features: ["half-close", "warm", "early-data"] }),
    '{"version":1,"hello":"warm","listener_id":"L1","features":["half-close","warm","early-data"]}',
  );
  assert.equal(
    encodeHello({ listener_id: "", features: [] }),
    '{"version":1,"hello":"warm","listener_id":"","features":[]}',
  );
});

Deno.test("decodeHello: round trip, and null for anything that is not a hello", () => {
  const hello = { listener_id: "L1", features: ["half-close", "warm"] };
  assert.deepEqual(decodeHello(encodeHello(hello)), hello);
  assert.deepEqual(decodeHello('{"version":1,"hello":"warm"}'), { listener_id: "", features: [] });
  assert.deepEqual(
    decodeHello('{"version":1,"hello":"warm","listener_id":"X","features":[],"extra":true}'),
    { listener_id: "X", features: [] },
  );
  for (
    const text of [
      "",
      "not json",
      "null",
      "[]",
      '"warm"',
      '{"version":1,"ok":true}', // an envelope answer, not a hello
      '{"version":2,"hello":"warm"}',
      '{"hello":"warm"}',
      '{"version":1,"hello":"cold"}',
      '{"version":1,"hello":"warm","listener_id":7}',
      '{"version":1,"hello":"warm","features":"warm"}',
      '{"version":1,"hello":"warm","features":[1]}',
    ]
  ) {
    assert.equal(decodeHello(text), null, text);
  }
});
