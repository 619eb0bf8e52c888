/**
 * The program's version. `deno run` reports "dev"; scripts/compile.ts builds binaries from a
 * generated entry that calls `stampVersion()` before the CLI's module graph is evaluated, so every
 * reader of this live binding sees the stamped value (`git describe --tags --always --dirty`).
 */
export let VERSION: string = "dev";

/** For the generated build entry only. */
export function stampVersion(version: string): void {
  VERSION = version;
}
