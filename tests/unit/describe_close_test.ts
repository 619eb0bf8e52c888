import assert from "node:assert/strict";
import { describeClose } from "../../lib/ws/close.ts";

Deno.test("describeClose: code and reason, the bare code, 1005 without a Close", () => {
  assert.equal(describeClose({ code: 1001, reason: "going away" }), "1001: going away");
  assert.equal(describeClose({ code: 1011, reason: "" }), "1011");
  assert.equal(describeClose(null), "1005");
  assert.equal(
    describeClose({ code: 1011, reason: "NameRenewalFailed" }, " "),
    "1011 NameRenewalFailed",
  );
});
