/** Retry delays as a pure function of the attempt number, so schedules are testable without time. */

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
  /** Growth per attempt; default 2. */
  factor?: number;
  /** Spread as a fraction of the delay (0.2 = ±20 %); default 0. */
  jitter?: number;
  /** Uniform [0, 1); default Math.random. */
  random?: () => number;
}

/** The delay before retry `attempt` (0 = first retry): base·factor^attempt, capped, then jittered. */
export function backoffDelay(attempt: number, opts: BackoffOptions): number {
  const nominal = Math.min(opts.maxMs, opts.baseMs * (opts.factor ?? 2) ** Math.max(0, attempt));
  const jitter = opts.jitter ?? 0;
  if (jitter <= 0) return nominal;
  const r = (opts.random ?? Math.random)();
  return Math.min(opts.maxMs, Math.round(nominal * (1 - jitter + 2 * jitter * r)));
}
