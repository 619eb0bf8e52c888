/** scripts/bench_ws.ts is optional (another module's benchmark); its tables follow ours. */
import { progress } from "./env.ts";
import { table } from "./table.ts";

export async function runWsBench(): Promise<void> {
  const url = new URL("../bench_ws.ts", import.meta.url);
  try {
    await Deno.stat(url);
  } catch {
    return;
  }
  const specifier = url.href;
  const mod = await import(specifier) as {
    benchWs?: () => Promise<unknown>;
    markdownTable?: (rows: Record<string, unknown>[]) => string;
  };
  if (typeof mod.benchWs !== "function") return;
  progress("bench_ws.ts: benchWs()");
  const result = await mod.benchWs();
  let text: string;
  if (typeof result === "string") {
    text = result;
  } else if (Array.isArray(result) && result.length > 0) {
    const rows = result as Record<string, unknown>[];
    text = mod.markdownTable?.(rows) ??
      table(Object.keys(rows[0]), rows.map((r) => Object.values(r).map(String)));
  } else {
    return;
  }
  console.log(`\n#### WebSocket layer (scripts/bench_ws.ts)\n\n${text}`);
}
