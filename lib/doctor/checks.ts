/**
 * The doctor's runner: checks in order, one line each, every check under its own deadline, and a
 * check whose prerequisite did not pass printed as skipped instead of run.
 */
import { deadline, DeadlineError } from "../async.ts";
import { formatDuration } from "../duration.ts";
import { errorMessage } from "../errors.ts";

/** What one check found: `detail` says what was seen, `fix` what to change when it failed. */
export type Outcome =
  | { readonly ok: true; readonly detail: string }
  | { readonly ok: false; readonly detail: string; readonly fix?: string }
  | { readonly skipped: string };

export const pass = (detail: string): Outcome => ({ ok: true, detail });
export const fail = (detail: string, fix?: string): Outcome => ({ ok: false, detail, fix });
/** Not run on purpose (a flag, a case that does not apply): neither a pass nor a failure. */
export const skip = (why: string): Outcome => ({ skipped: why });

export interface Check {
  /** What is checked, as printed: "relay name resolves". */
  readonly label: string;
  /** Labels of earlier checks that must pass first. */
  readonly needs?: readonly string[];
  /** Stops its work when `signal` aborts (its deadline or the caller's). */
  run(signal: AbortSignal): Promise<Outcome>;
}

export interface RunChecksOptions {
  /** Deadline of each check. */
  timeoutMs: number;
  /** Receives each line as soon as its check ends. */
  write(line: string): void;
  signal?: AbortSignal;
}

export const MARK_PASS = "✔";
export const MARK_FAIL = "✖";
export const MARK_SKIP = "-";

/** The printed line of one outcome. */
export function formatLine(label: string, outcome: Outcome): string {
  if ("skipped" in outcome) return `${MARK_SKIP} ${label}: skipped (${outcome.skipped})`;
  if (outcome.ok) return `${MARK_PASS} ${label}: ${outcome.detail}`;
  const fix = outcome.fix ? `; fix: ${outcome.fix}` : "";
  return `${MARK_FAIL} ${label}: ${outcome.detail}${fix}`;
}

/** Runs `checks` in order; true when none failed (skipped ones are not failures). */
export async function runChecks(
  checks: readonly Check[],
  opts: RunChecksOptions,
): Promise<boolean> {
  const notPassed = new Set<string>();
  let allPassed = true;
  for (const check of checks) {
    const missing = check.needs?.find((label) => notPassed.has(label));
    let outcome: Outcome;
    if (missing !== undefined) {
      outcome = skip(`needs "${missing}"`);
      notPassed.add(check.label);
    } else {
      outcome = await runOne(check, opts);
      if (!("ok" in outcome && outcome.ok)) notPassed.add(check.label);
      if ("ok" in outcome && !outcome.ok) allPassed = false;
    }
    opts.write(formatLine(check.label, outcome));
  }
  return allPassed;
}

/** One check under its deadline; a throw is a failure with the error's text. */
async function runOne(check: Check, opts: RunChecksOptions): Promise<Outcome> {
  const stop = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, stop.signal]) : stop.signal;
  try {
    return await deadline(check.run(signal), opts.timeoutMs, { signal: opts.signal });
  } catch (err) {
    if (err instanceof DeadlineError) {
      return fail(
        `no result within ${formatDuration(opts.timeoutMs)}`,
        "check the network path (firewall, proxy) or raise --timeout",
      );
    }
    return fail(errorMessage(err));
  } finally {
    // A check that outlived its deadline lets go of its sockets now.
    stop.abort();
  }
}
