/**
 * @azure/identity costs ~180 ms of start-up; SAS users, `--help` and every ssh ProxyCommand must not
 * pay it. Only a dynamic `import()` (or a type-only import) of it may appear in these module graphs.
 */
import assert from "node:assert/strict";

interface InfoDependency {
  specifier: string;
  code?: { specifier: string; isDynamic?: boolean };
  isDynamic?: boolean;
}
interface InfoModule {
  specifier: string;
  dependencies?: InfoDependency[];
}

async function staticIdentityImports(entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL(entry, import.meta.url).pathname],
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: InfoModule[] };
  const offenders: string[] = [];
  for (const m of graph.modules) {
    if (!m.specifier.startsWith("file:")) continue;
    for (const d of m.dependencies ?? []) {
      const target = d.code?.specifier ?? d.specifier;
      if (!/@azure\/identity/.test(target) || !d.code) continue;
      if (!(d.isDynamic || d.code.isDynamic)) offenders.push(m.specifier);
    }
  }
  return offenders;
}

for (const entry of ["../../lib/relay/entra.ts", "../../cmd/arc.ts"]) {
  Deno.test(`${entry.replace("../../", "")} imports @azure/identity only lazily`, async () => {
    assert.deepEqual(await staticIdentityImports(entry), []);
  });
}
