/** Reads and validates the `up` file, relay keys settled: what `up` and `up --check` start from. */
import { UsageError } from "../errors.ts";
import { type RelayOverrides, resolveEntries } from "./precedence.ts";
import type { Entry, FileConfig } from "./types.ts";
import { validateConfig, type ValidateOptions } from "./validate.ts";

export interface LoadedConfig {
  file: FileConfig;
  entries: Entry[];
}

/** Throws ConfigError for a bad file, UsageError when it cannot be read. */
export async function loadConfig(
  path: string,
  over: RelayOverrides,
  opts: ValidateOptions = {},
): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound ? "no such file" : (err as Error).message;
    throw new UsageError(`--config ${path}: ${why}`);
  }
  const file = validateConfig(text, path, opts);
  return { file, entries: resolveEntries(file, over) };
}
