import { UsageError } from "./errors.ts";

const UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  "μs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * The longest duration a timer can wait: setTimeout treats anything above 2^31-1 ms (~24.8 days) as
 * 1 ms, so a longer flag value would fire at once instead of never.
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/**
 * Parses a Go duration (`30s`, `1m30s`, `500ms`, `0`) into milliseconds, at most `MAX_DURATION_MS`.
 * Negative values pass (commands read them as "default" or "off").
 */
export function parseDuration(text: string, flag = "duration"): number {
  const s = text.trim();
  const fail = () =>
    new UsageError(`invalid ${flag} "${text}": expected a duration like 30s, 1m30s or 500ms`);
  if (s === "0" || s === "-0" || s === "+0") return 0;
  const m = /^([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/.exec(s);
  if (!m) throw fail();
  const sign = m[1] === "-" ? -1 : 1;
  let total = 0;
  for (
    const part of s.replace(/^[+-]/, "").matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)
  ) {
    total += Number(part[1]) * UNITS[part[2]];
  }
  if (!Number.isFinite(total)) throw fail();
  if (sign > 0 && total > MAX_DURATION_MS) {
    throw new UsageError(
      `invalid ${flag} "${text}": must be at most ${formatDuration(MAX_DURATION_MS)}`,
    );
  }
  return sign * total;
}

/** Formats milliseconds the way Go prints a time.Duration (`1.5s`, `250ms`, `1m30s`). */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  const neg = ms < 0;
  let rest = Math.abs(ms);
  let out: string;
  if (rest < 1) out = `${trim(rest * 1000)}µs`;
  else if (rest < 1000) out = `${trim(rest)}ms`;
  else {
    const h = Math.floor(rest / 3_600_000);
    rest -= h * 3_600_000;
    const m = Math.floor(rest / 60_000);
    rest -= m * 60_000;
    out = `${h ? `${h}h` : ""}${h || m ? `${m}m` : ""}${trim(rest / 1000)}s`;
  }
  return neg ? `-${out}` : out;
}

function trim(n: number): string {
  return String(Number(n.toFixed(3)));
}
