/** Log capture for tests: the lines the logger writes, and waiting for one without sleeps. */
import { configureLogging, type LogLevel, resetLogging } from "../../lib/observe/log.ts";

/** Collects log lines until `stop()` (or disposal). */
export interface LogCapture extends AsyncDisposable {
  readonly lines: string[];
  /**
   * The `nth` (default first) line matching every pattern; waits for it, and rejects after
   * `timeoutMs` so a wrong pattern fails instead of hanging.
   */
  waitFor(patterns: RegExp | RegExp[], timeoutMs?: number, nth?: number): Promise<string>;
  /** How many lines match every pattern. */
  count(patterns: RegExp | RegExp[]): number;
  stop(): Promise<void>;
}

const matcher = (patterns: RegExp | RegExp[]) => {
  const list = Array.isArray(patterns) ? patterns : [patterns];
  return (l: string) => list.every((p) => p.test(l));
};

/** Routes the logger (at `level`, default debug) into a `LogCapture`. */
export async function captureLogs(level: LogLevel = "debug"): Promise<LogCapture> {
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  await configureLogging({
    level,
    write: (l) => {
      lines.push(l);
      for (const w of [...waiters]) w();
    },
  });
  const waitFor = (patterns: RegExp | RegExp[], timeoutMs = 20_000, nth = 1) =>
    new Promise<string>((resolve, reject) => {
      const test = () => {
        const hit = lines.filter(matcher(patterns))[nth - 1];
        if (hit === undefined) return;
        clearTimeout(timer);
        waiters.delete(test);
        resolve(hit);
      };
      const timer = setTimeout(() => {
        waiters.delete(test);
        reject(
          new Error(`no log line #${nth} ${patterns} within ${timeoutMs} ms:\n${lines.join("")}`),
        );
      }, timeoutMs);
      waiters.add(test);
      test();
    });
  return {
    lines,
    waitFor,
    count: (patterns) => lines.filter(matcher(patterns)).length,
    stop: () => resetLogging(),
    [Symbol.asyncDispose]: () => resetLogging(),
  };
}

/** Runs `fn` with the log lines (at `level`, default debug) it writes; logging is reset after. */
export async function withLogs<T>(
  fn: (lines: string[]) => Promise<T>,
  level: LogLevel = "debug",
): Promise<T> {
  const logs = await captureLogs(level);
  try {
    return await fn(logs.lines);
  } finally {
    await logs.stop();
  }
}
