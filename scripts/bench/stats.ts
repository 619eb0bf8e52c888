/** Quantiles of latency samples. */

export interface SetupStats {
  p50: number;
  p95: number;
  mean: number;
  max: number;
}

/** The `q` quantile of ascending `sorted` (nearest rank); NaN when empty. */
export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

export const median = (xs: number[]): number => quantile([...xs].sort((a, b) => a - b), 0.5);

export function summarize(samples: number[]): SetupStats {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    p50: quantile(sorted, 0.5),
    p95: quantile(sorted, 0.95),
    mean: sorted.reduce((a, b) => a + b, 0) / sorted.length,
    max: sorted[sorted.length - 1] ?? NaN,
  };
}
