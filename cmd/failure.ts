/**
 * How a failed command ends: one redacted `aztunnel: error:` line on stderr and the exit code (2 for
 * a usage error, 1 for any other). Light on purpose: main.ts's fast path uses it without the CLI.
 */
import { errorMessage, UsageError } from "../lib/errors.ts";
import { redact } from "../lib/relay/redact.ts";

/** Prints `err` and returns the exit code it maps to. */
export function reportFailure(err: unknown): number {
  printError(err instanceof UsageError ? err.message : errorMessage(err));
  return err instanceof UsageError ? 2 : 1;
}

function printError(message: string): void {
  const line = new TextEncoder().encode(`aztunnel: error: ${redact(message)}\n`);
  try {
    Deno.stderr.writeSync(line);
  } catch {
    // stderr closed: nothing left to tell
  }
}
