/** What a SIGHUP changes (planReload), the swappable allowlist, and `--check`'s summary lines. */
import assert from "node:assert/strict";
import { LiveAllowlist } from "../../lib/config/live_allowlist.ts";
import { resolveEntries } from "../../lib/config/precedence.ts";
import { planReload } from "../../lib/config/reload_plan.ts";
import { summaryLine } from "../../lib/config/summary.ts";
import type { Entry } from "../../lib/config/types.ts";
import { validateConfig } from "../../lib/config/validate.ts";
import { parseAllowlist } from "../../lib/tunnel/allowlist.ts";

function entries(text: string): Entry[] {
  return resolveEntries(validateConfig(`relay: ns\nhyco: h\n${text}`, "up.yaml"), {});
}

const byName = (list: Entry[]) => new Map(list.map((e) => [e.name, e]));
const names = (list: Entry[]) => list.map((e) => e.name);

const BEFORE = `listeners:
  - name: l
    allow: ["127.0.0.1:22"]
tunnels:
  - name: same
    socks5-proxy: 127.0.0.1:1080
  - name: gone
    socks5-proxy: 127.0.0.1:1081
  - name: moved
    port-forward: 10.0.0.1:22
    bind: 127.0.0.1:2222
`;

Deno.test("reload plan: unchanged kept, removed stopped, added started, changed restarted", () => {
  const after = `# a comment moves every line: positions do not count as a change
listeners:
  - name: l
    allow: ["127.0.0.1:22", "127.0.0.1:80"]
tunnels:
  - name: moved
    bind: 127.0.0.1:2223
    port-forward: 10.0.0.1:22
  - name: same
    socks5-proxy: 127.0.0.1:1080
  - name: new
    socks5-proxy: 127.0.0.1:1082
`;
  const plan = planReload(byName(entries(BEFORE)), entries(after));
  assert.deepEqual(plan.stop, ["gone"]);
  assert.deepEqual(names(plan.start), ["new"]);
  assert.deepEqual(names(plan.restart), ["moved"]);
  assert.deepEqual(names(plan.update), ["l"]);
});

Deno.test("reload plan: a listener's max-connections is updated in place, with or without allow", () => {
  const limit = `listeners:\n  - name: l\n    allow: ["127.0.0.1:22"]\n    max-connections: 5\n`;
  assert.deepEqual(names(planReload(byName(entries(BEFORE)), entries(limit)).update), ["l"]);
  const both = `listeners:\n  - name: l\n    max-connections: 0\n`;
  const plan = planReload(byName(entries(limit)), entries(both));
  assert.deepEqual(names(plan.update), ["l"]);
  assert.deepEqual(plan.restart, []);
});

Deno.test("reload plan: a listener change beyond allow and max-connections restarts it; a kind change restarts", () => {
  const after = `listeners:
  - name: l
    allow: ["127.0.0.1:22"]
    max-connections: 5
    connect-timeout: 5s
tunnels:
  - name: same
    http-proxy: 127.0.0.1:1080
`;
  const plan = planReload(byName(entries(BEFORE)), entries(after));
  assert.deepEqual(names(plan.restart), ["l", "same"]);
  assert.deepEqual(plan.update, []);
});

Deno.test("reload plan: the same file changes nothing; not running means start", () => {
  const same = planReload(byName(entries(BEFORE)), entries(BEFORE));
  assert.deepEqual(same, { stop: [], start: [], restart: [], update: [] });
  const running = byName(entries(BEFORE));
  running.delete("gone");
  assert.deepEqual(names(planReload(running, entries(BEFORE)).start), ["gone"]);
});

Deno.test("live allowlist: swaps in place; null permits everything and shows as *", () => {
  const live = new LiveAllowlist(parseAllowlist(["127.0.0.1:22"]));
  assert.equal(live.allows("127.0.0.1:22"), true);
  assert.equal(live.allows("127.0.0.1:80"), false);
  assert.deepEqual(live.entries, ["127.0.0.1:22"]);
  live.set(parseAllowlist(["127.0.0.1:80"]));
  assert.equal(live.allows("127.0.0.1:22"), false);
  assert.equal(live.allows("127.0.0.1:80"), true);
  assert.deepEqual(live.entries, ["127.0.0.1:80"]);
  live.set(null);
  assert.equal(live.allows("10.1.2.3:5"), true);
  assert.deepEqual(live.entries, ["*"]);
});

Deno.test("summary: one line per entry, with its bind, target and relay", () => {
  assert.deepEqual(entries(BEFORE).map(summaryLine), [
    "listener l: allow 127.0.0.1:22 via ns hyco h",
    "socks5-proxy same: 127.0.0.1:1080 via ns hyco h",
    "socks5-proxy gone: 127.0.0.1:1081 via ns hyco h",
    "port-forward moved: 127.0.0.1:2222 -> 10.0.0.1:22 via ns hyco h",
  ]);
  assert.equal(
    summaryLine(entries("listeners:\n  - max-connections: 3\n")[0]),
    "listener listener-1: allow * (no allowlist) max-connections 3 via ns hyco h",
  );
});
