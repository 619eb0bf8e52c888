import assert from "node:assert/strict";
import { formatDuration, MAX_DURATION_MS, parseDuration } from "../../lib/duration.ts";
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

Deno.test("parseDuration refuses what setTimeout cannot wait for (over 2^31-1 ms)", () => {
  assert.equal(MAX_DURATION_MS, 2_147_483_647);
  assert.equal(parseDuration("596h31m23.647s"), 2_147_483_647);
  assert.equal(parseDuration("2147483647ms"), 2_147_483_647);
  // Negative values mean "default" or "off" to the commands; they never reach a timer as such.
  assert.equal(parseDuration("-1000h"), -3_600_000_000);
  for (const big of ["596h31m23.648s", "2147483648ms", "597h", "1000h"]) {
    assert.throws(() => parseDuration(big, "--latency"), (err: unknown) => {
      assert.ok(err instanceof UsageError);
      assert.equal(err.message, `invalid --latency "${big}": must be at most 596h31m23.647s`);
      return true;
    }, big);
  }
});
