/** The benchmark's knobs (BENCH_* environment variables) and its progress lines on stderr. */

/** A positive number from the environment, or `def` when unset. */
export function envNumber(name: string, def: number): number {
  const v = Deno.env.get(name);
  if (v === undefined || v === "") return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) {
    throw new Error(`${name} must be a positive number, got "${v}"`);
  }
  return n;
}

export const MiB = 1024 * 1024;

export function progress(text: string): void {
  console.error(`bench: ${text}`);
}
