import assert from "node:assert/strict";
import { formatDuration, parseDuration } from "../../lib/duration.ts";
import { UsageError } from "../../lib/errors.ts";

Deno.test("parseDuration reads Go duration syntax", () => {
  const cases: [string, number][] = [
    ["0", 0],
    ["30s", 30_000],
    ["1m30s", 90_000],
    ["500ms", 500],
    ["1.5s", 1500],
    ["2h", 7_200_000],
    ["1h2m3s4ms", 3_723_004],
    ["250us", 0.25],
    ["-5s", -5000],
    [" 10s ", 10_000],
  ];
  for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
});

Deno.test("parseDuration rejects what Go rejects, naming the flag", () => {
  for (const bad of ["", "30", "s", "1x", "1m30", "ten seconds", "1.2.3s", "--1s"]) {
    assert.throws(() => parseDuration(bad, "--connect-timeout"), (err: unknown) => {
      assert.ok(err instanceof UsageError);
      assert.equal(
        err.message,
        `invalid --connect-timeout "${bad}": expected a duration like 30s, 1m30s or 500ms`,
      );
      return true;
    });
  }
});

Deno.test("formatDuration prints like Go's time.Duration", () => {
  const cases: [number, string][] = [
    [0, "0s"],
    [250, "250ms"],
    [1500, "1.5s"],
    [30_000, "30s"],
    [90_000, "1m30s"],
    [3_723_004, "1h2m3.004s"],
    [0.5, "500µs"],
    [-2000, "-2s"],
  ];
  for (const [ms, text] of cases) assert.equal(formatDuration(ms), text, String(ms));
});
