/**
 * Builds standalone binaries with `deno compile`: dist/aztunnel-<os>-<arch>[.exe], named like the
 * Go tool's release assets, with the version stamped in and the runtime permissions baked in.
 *
 * Usage: deno run -A scripts/compile.ts [target…] [--host] [--version=X] [--output=PATH]
 *   target: a Rust triple (x86_64-unknown-linux-gnu) or a short name (linux-amd64, linux-x64,
 *   linux-arm64, darwin-amd64/macos-x64, darwin-arm64/macos-arm64, windows-amd64/windows-x64).
 *   No target: all five. --host: the machine's own. --output: only with exactly one target.
 *
 * Binaries built into dist/ leave their version in dist/VERSION, which release.ts names the bundles
 * after (resolving the version again at pack time could disagree with what was compiled in).
 *
 * `deno compile` downloads denort-<triple>.zip from dl.deno.land once per target into $DENO_DIR;
 * it cannot run where that host is unreachable.
 */
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { checkVersion, REPO_ROOT, resolveVersion, takeVersionFlag } from "./version.ts";

export interface Target {
  triple: string;
  os: "linux" | "darwin" | "windows";
  arch: "amd64" | "arm64";
  /** Other names accepted on the command line. */
  aliases: readonly string[];
}

export const TARGETS: readonly Target[] = [
  { triple: "x86_64-unknown-linux-gnu", os: "linux", arch: "amd64", aliases: ["linux-x64"] },
  { triple: "aarch64-unknown-linux-gnu", os: "linux", arch: "arm64", aliases: [] },
  { triple: "x86_64-apple-darwin", os: "darwin", arch: "amd64", aliases: ["macos-x64"] },
  { triple: "aarch64-apple-darwin", os: "darwin", arch: "arm64", aliases: ["macos-arm64"] },
  { triple: "x86_64-pc-windows-msvc", os: "windows", arch: "amd64", aliases: ["windows-x64"] },
];

export function findTarget(name: string): Target {
  const t = TARGETS.find((t) =>
    t.triple === name || `${t.os}-${t.arch}` === name || t.aliases.includes(name)
  );
  if (!t) {
    const known = TARGETS.map((t) => `${t.os}-${t.arch}`).join(", ");
    throw new Error(`unknown target "${name}" (known: ${known}, or a Rust triple)`);
  }
  return t;
}

export function hostTarget(): Target {
  return findTarget(Deno.build.target);
}

export function exeSuffix(t: Target): string {
  return t.os === "windows" ? ".exe" : "";
}

export function binaryName(t: Target): string {
  return `aztunnel-${t.os}-${t.arch}${exeSuffix(t)}`;
}

/**
 * The permissions baked into the binary, with why each is needed. Nothing here is scoped to
 * paths or hosts because the user names them at run time (relay, targets, cert and config files).
 * No ffi; `--unstable-net` is not needed (lib/ws uses
 * only stable Deno.connect/connectTls/listen). tests/packaging/packaging_test.ts checks these claims
 * against the source.
 */
// The same on every target today; the target stays in the signature for the day one differs.
export function permissionFlags(_target: Target): string[] {
  return [
    // Relay endpoints, tunnel targets, local binds, Entra/IMDS/ARM endpoints, HTTPS proxies.
    "--allow-net",
    // CA bundles, TLS cert/key and config files named by flags; AZURE_FEDERATED_TOKEN_FILE,
    // NODE_EXTRA_CA_CERTS; @azure/core-process stats PATH entries to find `az`.
    "--allow-read",
    // AZTUNNEL_*, HTTP(S)_PROXY/NO_PROXY, ~25 AZURE_*/IDENTITY_*/MSI_* variables read by
    // @azure/identity, and @azure/core-process copies the whole environment for `az`: a scoped
    // list would turn every variable the SDK adds later into a crash.
    "--allow-env",
    // node:https (every Entra token request) asks for sys "ca", which cannot be named in a
    // scoped --allow-sys; @azure/identity also reads osRelease for its user agent.
    "--allow-sys",
    // DefaultAzureCredential's developer credentials run `az`, `azd` and `pwsh` (`az login` is
    // the documented way to use a laptop). On Windows, az.cmd/azd.cmd run through
    // %SystemRoot%\System32\cmd.exe, which a name list cannot express reliably. And
    // `relay-sender connect --persist` starts the agent from this very binary, whose path is
    // only known at run time.
    "--allow-run",
    // The agent's socket directory (0700) and socket under $XDG_RUNTIME_DIR or $TMPDIR, known only
    // at run time; nothing else is written.
    "--allow-write",
  ];
}

export interface CompilePlan {
  target: Target;
  version: string;
  /** Where the binary goes. */
  output: string;
  /** The generated entry module that stamps the version, then loads main.ts. */
  entry: URL;
}

/**
 * Writes `<dir>/stamp.ts` (sets the version) and `<dir>/entry.ts` (imports stamp.ts, then the
 * program). Sibling imports are evaluated in order, so the stamp lands before main.ts's graph runs.
 */
export async function writeBuildEntry(
  dir: URL,
  version: string,
  mainModule: URL = new URL("main.ts", REPO_ROOT),
  versionModule: URL = new URL("lib/version.ts", REPO_ROOT),
): Promise<URL> {
  await Deno.mkdir(dir, { recursive: true });
  const stamp = `// Generated by scripts/compile.ts; do not edit.\n` +
    `import { stampVersion } from ${JSON.stringify(relativeSpecifier(dir, versionModule))};\n` +
    `stampVersion(${JSON.stringify(version)});\n`;
  const entry = `// Generated by scripts/compile.ts; do not edit.\n` +
    `import "./stamp.ts";\n` +
    `import ${JSON.stringify(relativeSpecifier(dir, mainModule))};\n`;
  await Deno.writeTextFile(new URL("stamp.ts", dir), stamp);
  const entryUrl = new URL("entry.ts", dir);
  await Deno.writeTextFile(entryUrl, entry);
  return entryUrl;
}

/** `../../x.ts` from directory `from` (a URL ending in "/") to file `to`. */
function relativeSpecifier(from: URL, to: URL): string {
  const a = from.pathname.split("/").filter(Boolean);
  const b = to.pathname.split("/").filter(Boolean);
  let i = 0;
  while (i < a.length && i < b.length - 1 && a[i] === b[i]) i++;
  const up = a.length - i;
  return (up ? "../".repeat(up) : "./") + b.slice(i).join("/");
}

export function compileArgs(plan: CompilePlan, config: URL = new URL("deno.json", REPO_ROOT)) {
  return [
    "compile",
    // Baked into the binary: hides denort's start-up notes, such as "Failed to resolve 'az' for
    // allow-run" on machines without az, which would otherwise land on every run's stderr.
    "--quiet",
    "--frozen",
    "--config",
    fileURLToPath(config),
    "--target",
    plan.target.triple,
    ...permissionFlags(plan.target),
    "--output",
    plan.output,
    plan.entry.href,
  ];
}

export async function compile(plan: CompilePlan): Promise<void> {
  const args = compileArgs(plan);
  console.error(`compiling ${plan.output} (${plan.target.triple}, ${plan.version})`);
  const { code } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: REPO_ROOT,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (code !== 0) throw new Error(`deno compile for ${plan.target.triple} failed (exit ${code})`);
}

/** The file in the binaries' directory that records the version compiled into them. */
export const VERSION_FILE = "VERSION";

export async function writeVersionFile(dir: string, version: string): Promise<void> {
  await Deno.writeTextFile(join(dir, VERSION_FILE), `${checkVersion(version)}\n`);
}

/** The version recorded in `dir`, or undefined when there is no VERSION file. */
export async function readVersionFile(dir: string): Promise<string | undefined> {
  try {
    return checkVersion((await Deno.readTextFile(join(dir, VERSION_FILE))).trim());
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/**
 * Binaries in `dir` for targets other than `building` when they were built as another version:
 * release.ts packs every binary it finds under the one version in VERSION.
 */
export async function staleBinaries(
  dir: string,
  building: readonly Target[],
  version: string,
): Promise<string[]> {
  let recorded: string | undefined;
  try {
    recorded = await readVersionFile(dir);
  } catch {
    recorded = undefined;
  }
  if (recorded === undefined || recorded === version) return [];
  const stale: string[] = [];
  for (const t of TARGETS) {
    if (building.includes(t)) continue;
    try {
      await Deno.stat(join(dir, binaryName(t)));
      stale.push(binaryName(t));
    } catch {
      // not there: nothing stale
    }
  }
  return stale;
}

async function main(argv: string[]): Promise<void> {
  const { version: explicit, rest } = takeVersionFlag(argv);
  let output: string | undefined;
  const targets: Target[] = [];
  for (const a of rest) {
    if (a.startsWith("--output=")) output = a.slice("--output=".length);
    else if (a === "--host") targets.push(hostTarget());
    else if (a.startsWith("-")) throw new Error(`unknown option ${a}`);
    else targets.push(findTarget(a));
  }
  if (!targets.length) targets.push(...TARGETS);
  if (output && targets.length !== 1) throw new Error("--output needs exactly one target");
  const version = await resolveVersion({ explicit });
  const dist = fileURLToPath(new URL("dist/", REPO_ROOT));
  if (!output) {
    const stale = await staleBinaries(dist, targets, version);
    if (stale.length) {
      console.error(
        `compile: warning: ${stale.join(", ")} in dist/ were built as another version than ` +
          `${version}; rebuild or delete them before \`deno task release\``,
      );
    }
  }
  const buildDir = new URL("dist/.build/", REPO_ROOT);
  const entry = await writeBuildEntry(buildDir, version);
  try {
    for (const target of targets) {
      const out = output ? resolve(output) : join(dist, binaryName(target));
      await compile({ target, version, output: out, entry });
      // After the first binary exists, so a failed build never leaves a VERSION that names nothing.
      if (!output) await writeVersionFile(dist, version);
    }
  } finally {
    await Deno.remove(buildDir, { recursive: true });
  }
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (err) {
    console.error(`compile: ${err instanceof Error ? err.message : err}`);
    Deno.exit(1);
  }
}
