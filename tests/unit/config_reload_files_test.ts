/** A SIGHUP restarts an entry whose proxy-auth-file or relay-ca-cert changed in place. */
import assert from "node:assert/strict";
import { resolveEntries } from "../../lib/config/precedence.ts";
import { planReload, recordReferencedFiles } from "../../lib/config/reload_plan.ts";
import type { Entry } from "../../lib/config/types.ts";
import { validateConfig } from "../../lib/config/validate.ts";

function entries(dir: string): Entry[] {
  const text = `relay: ns\nhyco: h\nrelay-ca-cert: ${dir}/ca.crt\ntunnels:
  - name: web
    http-proxy: 127.0.0.1:3128
    proxy-auth-file: ${dir}/auth
  - name: db
    port-forward: 10.0.0.1:5432
    bind: 127.0.0.1:5432
`;
  return resolveEntries(validateConfig(text, `${dir}/up.yaml`), {});
}

const byName = (list: Entry[]) => new Map(list.map((e) => [e.name, e]));

Deno.test("reload plan: a changed password or CA file restarts the entries that use it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/auth`, "u:old\n");
    await Deno.writeTextFile(`${dir}/ca.crt`, "ca one\n");
    const running = entries(dir);
    // What the launch does: the files' contents as the entries started with them.
    running.forEach(recordReferencedFiles);

    const same = planReload(byName(running), entries(dir));
    assert.deepEqual(same.restart, [], "same contents: nothing restarts");

    await Deno.writeTextFile(`${dir}/auth`, "u:new\n");
    const pw = planReload(byName(running), entries(dir));
    assert.deepEqual(pw.restart.map((e) => e.name), ["web"]);

    await Deno.writeTextFile(`${dir}/auth`, "u:old\n");
    await Deno.writeTextFile(`${dir}/ca.crt`, "ca two\n");
    const ca = planReload(byName(running), entries(dir));
    assert.deepEqual(ca.restart.map((e) => e.name), ["web", "db"]);

    await Deno.remove(`${dir}/auth`);
    await Deno.writeTextFile(`${dir}/ca.crt`, "ca one\n");
    const gone = planReload(byName(running), entries(dir));
    assert.deepEqual(gone.restart.map((e) => e.name), ["web"], "a vanished file is a change");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
