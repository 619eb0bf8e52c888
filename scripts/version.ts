/**
 * The build version, shared by compile.ts and release.ts: an explicit `--version`, else
 * `AZTUNNEL_VERSION` (CI sets `dev-<sha12>` for the rolling dev channel), else
 * `git describe --tags --always --dirty`, else "dev" (no git or no commit yet).
 *
 * Usage: deno run -A scripts/version.ts [--version=X]
 */

export const REPO_ROOT = new URL("../", import.meta.url);

/** Versions end up in file names and generated code, so only this alphabet is allowed. */
const VERSION_SHAPE = /^[0-9A-Za-z][0-9A-Za-z._+-]{0,127}$/;

export function checkVersion(version: string): string {
  if (!VERSION_SHAPE.test(version)) {
    throw new Error(`invalid version "${version}": use letters, digits and . _ + -`);
  }
  return version;
}

/** `git describe --tags --always --dirty` in `cwd`, or undefined when git cannot answer. */
export async function gitDescribe(cwd: string | URL = REPO_ROOT): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("git", {
      args: ["describe", "--tags", "--always", "--dirty"],
      cwd,
      stdout: "piped",
      stderr: "null",
    }).output();
    const v = new TextDecoder().decode(out.stdout).trim();
    return out.success && v ? v : undefined;
  } catch {
    return undefined;
  }
}

export interface VersionSources {
  explicit?: string;
  env?: (name: string) => string | undefined;
  cwd?: string | URL;
}

export async function resolveVersion(src: VersionSources = {}): Promise<string> {
  const env = src.env ?? ((n: string) => Deno.env.get(n));
  const v = src.explicit || env("AZTUNNEL_VERSION") || await gitDescribe(src.cwd) || "dev";
  return checkVersion(v);
}

/** Pulls `--version=X` / `--version X` out of argv; returns the value and the remaining args. */
export function takeVersionFlag(args: readonly string[]): { version?: string; rest: string[] } {
  const rest: string[] = [];
  let version: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a.startsWith("--version=")) version = a.slice("--version=".length);
    else if (a === "--version") {
      version = args[++i];
      if (version === undefined) throw new Error("--version needs a value");
    } else rest.push(a);
  }
  return { version, rest };
}

if (import.meta.main) {
  const { version } = takeVersionFlag(Deno.args);
  console.log(await resolveVersion({ explicit: version }));
}
