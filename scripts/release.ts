/**
 * Packs the binaries from scripts/compile.ts into release bundles, like the Go tool's:
 * `aztunnel-<version>-<os>-<arch>.tar.gz` (`.zip` for Windows) holding `aztunnel[.exe]`,
 * `README.md` and `LICENSE`, plus a `SHA256SUMS` file that `sha256sum -c` accepts.
 *
 * Bundles are reproducible: sorted entries, owner 0, fixed mtime (SOURCE_DATE_EPOCH, else the
 * last commit's time), gzip without a timestamp. The archive writers are here rather than in tar
 * and zip so the output is identical on every build host (BSD tar has no --sort, Windows no tar -z).
 *
 * The version is the one compile.ts recorded in <dist>/VERSION, so bundle names always match the
 * binaries inside; only without that file is it resolved again (with a warning).
 *
 * Usage: deno run -A scripts/release.ts [--version=X] [--dist=dist] [--out=dist/release]
 */
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  binaryName,
  exeSuffix,
  readVersionFile,
  type Target,
  TARGETS,
  VERSION_FILE,
} from "./compile.ts";
import { REPO_ROOT, resolveVersion, takeVersionFlag } from "./version.ts";
import { concatBytes } from "../lib/bytes.ts";

export interface ArchiveEntry {
  name: string;
  data: Uint8Array;
  /** Unix permission bits, e.g. 0o755. */
  mode: number;
}

/** 1980-01-01T00:00:00Z, the earliest time a zip entry can carry. */
const ZIP_EPOCH = 315532800;

export function bundleName(version: string, t: Target): string {
  return `aztunnel-${version}-${t.os}-${t.arch}${t.os === "windows" ? ".zip" : ".tar.gz"}`;
}

// ---------------------------------------------------------------------------------------------
// tar (POSIX ustar) + gzip

const enc = new TextEncoder();

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, "0") + "\0";
}

function tarHeader(e: ArchiveEntry, mtime: number): Uint8Array {
  const name = enc.encode(e.name);
  if (name.length > 100) throw new Error(`tar: name too long: ${e.name}`);
  const h = new Uint8Array(512);
  const put = (off: number, s: string) => h.set(enc.encode(s), off);
  h.set(name, 0);
  put(100, octal(e.mode, 8));
  put(108, octal(0, 8)); // uid
  put(116, octal(0, 8)); // gid
  put(124, octal(e.data.length, 12));
  put(136, octal(mtime, 12));
  put(148, "        "); // checksum field counts as spaces while summing
  put(156, "0"); // regular file
  put(257, "ustar\x0000");
  put(329, octal(0, 8)); // devmajor
  put(337, octal(0, 8)); // devminor
  const sum = h.reduce((a, b) => a + b, 0);
  put(148, sum.toString(8).padStart(6, "0") + "\0 ");
  return h;
}

export function tar(entries: readonly ArchiveEntry[], mtime: number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    parts.push(tarHeader(e, mtime), e.data, new Uint8Array((512 - e.data.length % 512) % 512));
  }
  parts.push(new Uint8Array(1024)); // two zero blocks end the archive
  return concatBytes(parts);
}

/** gzip with mtime 0 and no file name in the header (Deno's CompressionStream writes neither). */
export async function gzip(data: Uint8Array): Promise<Uint8Array> {
  return await pipe(data, new CompressionStream("gzip"));
}

// ---------------------------------------------------------------------------------------------
// zip (deflate, Unix modes in the external attributes)

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function dosDateTime(epochSeconds: number): { date: number; time: number } {
  const d = new Date(Math.max(epochSeconds, ZIP_EPOCH) * 1000);
  return {
    date: ((d.getUTCFullYear() - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate(),
    time: (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | (d.getUTCSeconds() >> 1),
  };
}

export async function zip(entries: readonly ArchiveEntry[], mtime: number): Promise<Uint8Array> {
  const { date, time } = dosDateTime(mtime);
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = enc.encode(e.name);
    const body = await pipe(e.data, new CompressionStream("deflate-raw"));
    const crc = crc32(e.data);
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, 20, true); // version needed: 2.0 (deflate)
    local.setUint16(8, 8, true); // method: deflate
    local.setUint16(10, time, true);
    local.setUint16(12, date, true);
    local.setUint32(14, crc, true);
    local.setUint32(18, body.length, true);
    local.setUint32(22, e.data.length, true);
    local.setUint16(26, name.length, true);
    locals.push(new Uint8Array(local.buffer), name, body);

    const central = new DataView(new ArrayBuffer(46));
    central.setUint32(0, 0x02014b50, true);
    central.setUint16(4, (3 << 8) | 20, true); // made by: Unix, so external attrs carry the mode
    central.setUint16(6, 20, true);
    central.setUint16(10, 8, true);
    central.setUint16(12, time, true);
    central.setUint16(14, date, true);
    central.setUint32(16, crc, true);
    central.setUint32(20, body.length, true);
    central.setUint32(24, e.data.length, true);
    central.setUint16(28, name.length, true);
    central.setUint32(38, ((0o100000 | e.mode) << 16) >>> 0, true); // S_IFREG | mode
    central.setUint32(42, offset, true);
    centrals.push(new Uint8Array(central.buffer), name);
    offset += 30 + name.length + body.length;
  }
  const cd = concatBytes(centrals);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, entries.length, true);
  end.setUint16(10, entries.length, true);
  end.setUint32(12, cd.length, true);
  end.setUint32(16, offset, true);
  return concatBytes([...locals, cd, new Uint8Array(end.buffer)]);
}

// ---------------------------------------------------------------------------------------------

async function pipe(data: Uint8Array, t: CompressionStream): Promise<Uint8Array> {
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(t);
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

export async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The bundle for one target: binary as `aztunnel[.exe]` (0755) plus docs (0644), sorted. */
export async function makeBundle(
  t: Target,
  binary: Uint8Array,
  docs: { readme: Uint8Array; license: Uint8Array },
  mtime: number,
): Promise<Uint8Array> {
  const entries: ArchiveEntry[] = [
    { name: "LICENSE", data: docs.license, mode: 0o644 },
    { name: "README.md", data: docs.readme, mode: 0o644 },
    { name: `aztunnel${exeSuffix(t)}`, data: binary, mode: 0o755 },
  ].sort((a, b) => (a.name < b.name ? -1 : 1));
  return t.os === "windows" ? await zip(entries, mtime) : await gzip(tar(entries, mtime));
}

export interface ReleaseOptions {
  version: string;
  /** Directory holding compile.ts's `aztunnel-<os>-<arch>[.exe]` files. */
  binDir: string;
  outDir: string;
  readme: string;
  license: string;
  /** Seconds since the epoch for every archive entry. */
  mtime: number;
}

/** Writes every bundle whose binary exists, then SHA256SUMS; returns the bundle file names. */
export async function buildRelease(o: ReleaseOptions): Promise<string[]> {
  const docs = {
    readme: await Deno.readFile(o.readme),
    license: await Deno.readFile(o.license),
  };
  await Deno.mkdir(o.outDir, { recursive: true });
  const sums: string[] = [];
  const written: string[] = [];
  for (const t of TARGETS) {
    let binary: Uint8Array;
    try {
      binary = await Deno.readFile(join(o.binDir, binaryName(t)));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) continue;
      throw err;
    }
    const name = bundleName(o.version, t);
    const bundle = await makeBundle(t, binary, docs, o.mtime);
    await Deno.writeFile(join(o.outDir, name), bundle);
    sums.push(`${await sha256Hex(bundle)}  ${name}\n`);
    written.push(name);
  }
  if (!sums.length) {
    throw new Error(`no binaries in ${o.binDir}; run \`deno task compile\` first`);
  }
  await Deno.writeTextFile(join(o.outDir, "SHA256SUMS"), sums.join(""));
  return written;
}

export interface ReleaseVersionOptions {
  /** Directory holding the binaries and compile.ts's VERSION file. */
  binDir: string;
  /** `--version`: must agree with VERSION when that exists. */
  explicit?: string;
  /** Resolves the version when VERSION is missing; default version.ts's resolveVersion. */
  resolve?: (explicit?: string) => Promise<string>;
  warn?: (message: string) => void;
}

/** The version the binaries in `binDir` were compiled with (see the module comment). */
export async function releaseVersion(o: ReleaseVersionOptions): Promise<string> {
  const recorded = await readVersionFile(o.binDir);
  if (recorded !== undefined) {
    if (o.explicit && o.explicit !== recorded) {
      throw new Error(
        `--version=${o.explicit} disagrees with ${join(o.binDir, VERSION_FILE)} (${recorded}), ` +
          "the version compiled into the binaries; recompile or drop --version",
      );
    }
    return recorded;
  }
  const version = await (o.resolve ?? ((explicit) => resolveVersion({ explicit })))(o.explicit);
  (o.warn ?? console.error)(
    `release: warning: ${join(o.binDir, VERSION_FILE)} is missing (binaries not built by ` +
      `scripts/compile.ts?); naming the bundles ${version}, which may not match the binaries`,
  );
  return version;
}

/** SOURCE_DATE_EPOCH, else the last commit's time, else 1980-01-01 (zip's earliest). */
export async function releaseMtime(): Promise<number> {
  const env = Deno.env.get("SOURCE_DATE_EPOCH");
  if (env && /^\d+$/.test(env)) return Number(env);
  try {
    const out = await new Deno.Command("git", {
      args: ["log", "-1", "--format=%ct"],
      cwd: REPO_ROOT,
      stdout: "piped",
      stderr: "null",
    }).output();
    const v = new TextDecoder().decode(out.stdout).trim();
    if (out.success && /^\d+$/.test(v)) return Number(v);
  } catch {
    // no git: fall through to the fixed date
  }
  return ZIP_EPOCH;
}

if (import.meta.main) {
  try {
    const { version: explicit, rest } = takeVersionFlag(Deno.args);
    const opt = (name: string, def: string) =>
      rest.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? def;
    const unknown = rest.find((a) => !/^--(dist|out)=/.test(a));
    if (unknown) throw new Error(`unknown argument ${unknown}`);
    const root = fileURLToPath(REPO_ROOT);
    const binDir = resolve(opt("dist", join(root, "dist")));
    const written = await buildRelease({
      version: await releaseVersion({ binDir, explicit }),
      binDir,
      outDir: resolve(opt("out", join(binDir, "release"))),
      readme: join(root, "README.md"),
      license: join(root, "LICENSE"),
      mtime: await releaseMtime(),
    });
    for (const name of written) console.error(`wrote ${name}`);
  } catch (err) {
    console.error(`release: ${err instanceof Error ? err.message : err}`);
    Deno.exit(1);
  }
}
