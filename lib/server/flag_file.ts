/** Files named by relay-server flags: a file that cannot be read is a usage error naming the flag. */
import { errorMessage, UsageError } from "../errors.ts";

export async function readFlagFile(file: string, flag: string): Promise<string> {
  try {
    return await Deno.readTextFile(file);
  } catch (err) {
    throw new UsageError(`${flag} ${file}: ${errorMessage(err)}`);
  }
}
