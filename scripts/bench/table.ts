/** Markdown tables and the number formats the benchmark prints. */

export const f1 = (n: number): string => Number.isFinite(n) ? n.toFixed(1) : "n/a";
export const f2 = (n: number): string => Number.isFinite(n) ? n.toFixed(2) : "n/a";
export const ratio = (a: number, b: number): string =>
  Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : "n/a";
export const verdict = (ok: boolean): string => ok ? "met" : "**missed**";

export function table(head: string[], rows: string[][]): string {
  return [
    `| ${head.join(" | ")} |`,
    `| ${head.map(() => "---").join(" | ")} |`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
}
