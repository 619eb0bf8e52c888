import assert from "node:assert/strict";
import { redact } from "../../lib/relay/redact.ts";

Deno.test("redact replaces every sb-hc-token value", () => {
  const cases: [string, string][] = [
    ["wss://h/$hc/x?sb-hc-token=abc", "wss://h/$hc/x?sb-hc-token=REDACTED"],
    [
      "dial wss://h/$hc/x?sb-hc-action=connect&sb-hc-token=Shared+sr%3Dx&sb-hc-id=1 failed",
      "dial wss://h/$hc/x?sb-hc-action=connect&sb-hc-token=REDACTED&sb-hc-id=1 failed",
    ],
    ['GET "wss://h?sb-hc-token=abc" 401', 'GET "wss://h?sb-hc-token=REDACTED" 401'],
    ["a sb-hc-token=x b sb-hc-token=y", "a sb-hc-token=REDACTED b sb-hc-token=REDACTED"],
    ["sb-hc-token=", "sb-hc-token=REDACTED"],
    ["sb-hc-token=abc\nnext", "sb-hc-token=REDACTED\nnext"],
    ["no token here", "no token here"],
    ["", ""],
  ];
  for (const [input, want] of cases) assert.equal(redact(input), want, input);
});
