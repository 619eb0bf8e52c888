/** lib/doctor/checks.ts: order, prerequisites, deadlines and the printed lines. */
import assert from "node:assert/strict";
import { type Check, fail, formatLine, pass, runChecks, skip } from "../../lib/doctor/checks.ts";

const check = (label: string, outcome: ReturnType<typeof pass>, needs?: string[]): Check => ({
  label,
  needs,
  run: () => Promise.resolve(outcome),
});

async function run(checks: Check[], timeoutMs = 1000) {
  const lines: string[] = [];
  const ok = await runChecks(checks, { timeoutMs, write: (l) => lines.push(l) });
  return { ok, lines };
}

Deno.test("formatLine: pass, failure with and without a fix, skipped", () => {
  assert.equal(formatLine("a", pass("fine")), "✔ a: fine");
  assert.equal(formatLine("a", fail("broken", "mend it")), "✖ a: broken; fix: mend it");
  assert.equal(formatLine("a", fail("broken")), "✖ a: broken");
  assert.equal(formatLine("a", skip("--flag")), "- a: skipped (--flag)");
});

Deno.test("runChecks: a failure skips what needs it, transitively, and the run fails", async () => {
  const ran: string[] = [];
  const tracked = (label: string, needs?: string[]): Check => ({
    label,
    needs,
    run: () => {
      ran.push(label);
      return Promise.resolve(pass("ok"));
    },
  });
  const r = await run([
    check("one", fail("no")),
    tracked("two", ["one"]),
    tracked("three", ["two"]),
    tracked("four"),
  ]);
  assert.deepEqual(r.lines, [
    "✖ one: no",
    '- two: skipped (needs "one")',
    '- three: skipped (needs "two")',
    "✔ four: ok",
  ]);
  assert.deepEqual(ran, ["four"]);
  assert.equal(r.ok, false);
});

Deno.test("runChecks: skipped on purpose is no failure, but its dependants are skipped", async () => {
  const r = await run([check("a", skip("--skip-a")), check("b", pass("ok"), ["a"])]);
  assert.deepEqual(r.lines, ["- a: skipped (--skip-a)", '- b: skipped (needs "a")']);
  assert.equal(r.ok, true);
});

Deno.test("runChecks: a check past its deadline fails and sees its signal abort", async () => {
  let aborted = false;
  const hung: Check = {
    label: "slow",
    run: (signal) =>
      new Promise((resolve) => {
        signal.addEventListener("abort", () => {
          aborted = true;
          resolve(pass("too late"));
        });
      }),
  };
  const r = await run([hung], 20);
  assert.deepEqual(r.lines, [
    "✖ slow: no result within 20ms; fix: check the network path (firewall, proxy) or raise --timeout",
  ]);
  assert.equal(aborted, true);
  assert.equal(r.ok, false);
});

Deno.test("runChecks: a check that throws is a failure with the error's text", async () => {
  const r = await run([{ label: "x", run: () => Promise.reject(new Error("boom")) }]);
  assert.deepEqual(r.lines, ["✖ x: boom"]);
});
