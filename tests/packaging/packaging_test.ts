import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  binaryName,
  compileArgs,
  findTarget,
  hostTarget,
  permissionFlags,
  readVersionFile,
  staleBinaries,
  TARGETS,
  writeBuildEntry,
  writeVersionFile,
} from "../../scripts/compile.ts";
import {
  buildRelease,
  bundleName,
  crc32,
  makeBundle,
  releaseVersion,
  tar,
} from "../../scripts/release.ts";
import {
  checkVersion,
  gitDescribe,
  resolveVersion,
  takeVersionFlag,
} from "../../scripts/version.ts";

const ROOT = new URL("../../", import.meta.url);
const rootPath = (p: string) => fileURLToPath(new URL(p, ROOT));
const dec = new TextDecoder();

async function run(cmd: string, args: string[], cwd?: string) {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function hasCommand(cmd: string): Promise<boolean> {
  try {
    await new Deno.Command(cmd, { args: ["--version"], stdout: "null", stderr: "null" }).output();
    return true;
  } catch {
    return false;
  }
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "aztunnel-pkg-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Every .ts file under lib/ and cmd/ plus main.ts, with comments stripped. */
async function programSources(): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const p = join(dir, e.name);
      if (e.isDirectory) await walk(p);
      else if (e.name.endsWith(".ts")) {
        const text = await Deno.readTextFile(p);
        files.set(p, text.replace(/\/\*[\s\S]*?\*\/|(^|[^:"'`])\/\/[^\n]*/g, "$1"));
      }
    }
  };
  await walk(rootPath("lib"));
  await walk(rootPath("cmd"));
  files.set(rootPath("main.ts"), await Deno.readTextFile(rootPath("main.ts")));
  return files;
}

function users(files: Map<string, string>, pattern: RegExp): string[] {
  return [...files].filter(([, text]) => pattern.test(text)).map(([p]) => p);
}

// ---------------------------------------------------------------------------------------------
// targets and permissions

Deno.test("compile: five targets with Go-style asset names and aliases", () => {
  assert.deepEqual(TARGETS.map(binaryName), [
    "aztunnel-linux-amd64",
    "aztunnel-linux-arm64",
    "aztunnel-darwin-amd64",
    "aztunnel-darwin-arm64",
    "aztunnel-windows-amd64.exe",
  ]);
  assert.equal(findTarget("linux-x64").triple, "x86_64-unknown-linux-gnu");
  assert.equal(findTarget("macos-arm64").triple, "aarch64-apple-darwin");
  assert.equal(findTarget("windows-amd64").triple, "x86_64-pc-windows-msvc");
  assert.throws(() => findTarget("plan9-mips"), /unknown target/);
  assert.equal(hostTarget().triple, Deno.build.target);
});

Deno.test("compile: every deno.json compile task names a known target", async () => {
  const { tasks } = JSON.parse(await Deno.readTextFile(rootPath("deno.json"))) as {
    tasks: Record<string, string>;
  };
  const named = Object.entries(tasks).filter(([k]) => k.startsWith("compile:"));
  assert.equal(named.length, TARGETS.length);
  for (const [, cmd] of named) findTarget(cmd.split(" ").at(-1) ?? "");
});

Deno.test("compile: permission flags match what the program uses", async () => {
  const src = await programSources();
  const spawns = users(src, /\bDeno\.Command\b|\bDeno\.run\s*\(|node:child_process/);
  // DefaultAzureCredential's developer credentials spawn az / azd / pwsh.
  const devCreds = users(src, /\b(DefaultAzureCredential|AzureCliCredential)\b/);
  const writes = users(
    src,
    /\bDeno\.(writeFile|writeTextFile|mkdir|makeTempDir|makeTempFile|create|remove|rename|copyFile|symlink|link|chmod|chown|truncate|utime)(Sync)?\s*\(|\bwrite:\s*true\b|node:fs/,
  );
  const unstableNet = users(
    src,
    /\bWebSocketStream\b|\bDeno\.(connectQuic|listenDatagram|QuicEndpoint|upgradeWebTransport)\b/,
  );
  const ffi = users(src, /\bDeno\.dlopen\b/);
  const commandNames = [...src.values()].flatMap((t) =>
    [...t.matchAll(/new Deno\.Command\(\s*["']([^"']+)["']/g)].map((m) => m[1])
  );

  for (const t of TARGETS) {
    const flags = permissionFlags(t);
    const all = compileArgs({ target: t, version: "v0", output: "x", entry: new URL(ROOT) });
    const run = flags.find((f) => f.startsWith("--allow-run"));
    assert.equal(!!run, spawns.length + devCreds.length > 0, `${t.triple}: --allow-run`);
    if (run && run !== "--allow-run") {
      const allowed = run.slice("--allow-run=".length).split(",");
      if (devCreds.length) {
        for (const n of ["az", "azd", "pwsh"]) assert.ok(allowed.includes(n));
      }
      for (const n of commandNames) assert.ok(allowed.includes(n), `${n} missing from ${run}`);
    }
    assert.equal(
      flags.some((f) => f.startsWith("--allow-write")),
      writes.length > 0,
      `--allow-write vs writes in ${writes.join(", ") || "nothing"}`,
    );
    assert.equal(all.includes("--unstable-net"), unstableNet.length > 0, unstableNet.join(", "));
    assert.equal(flags.some((f) => f.startsWith("--allow-ffi")), ffi.length > 0);
    assert.ok(!all.includes("--allow-all") && !all.includes("-A"), "never bake --allow-all");
    for (const f of ["--allow-net", "--allow-read", "--allow-env", "--allow-sys"]) {
      assert.ok(flags.includes(f), `${t.triple}: ${f}`);
    }
  }
  assert.ok(permissionFlags(findTarget("windows-amd64")).includes("--allow-run"));
});

Deno.test({
  name: "compile: `az login` works under the baked permissions (fake az on PATH)",
  ignore: Deno.build.os === "windows",
  fn: () =>
    withTempDir(async (dir) => {
      const az = join(dir, "az");
      await Deno.writeTextFile(
        az,
        "#!/bin/sh\necho '" + JSON.stringify({
          accessToken: "fake-cli-token",
          expiresOn: "2099-01-01 00:00:00.000000",
          expires_on: 4070908800,
          tokenType: "Bearer",
        }) + "'\n",
      );
      await Deno.chmod(az, 0o755);
      const script = join(dir, "cli_token.ts");
      await Deno.writeTextFile(
        script,
        'import { AzureCliCredential } from "@azure/identity";\n' +
          'const t = await new AzureCliCredential().getToken("https://relay.azure.net/.default");\n' +
          "console.log(t.token);\n",
      );
      const args = [
        "run",
        "--quiet",
        "--frozen",
        "--no-prompt",
        "--config",
        rootPath("deno.json"),
        ...permissionFlags(hostTarget()),
        script,
      ];
      const out = await new Deno.Command(Deno.execPath(), {
        args,
        env: { PATH: `${dir}:${Deno.env.get("PATH") ?? ""}` },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(dec.decode(out.stdout), "fake-cli-token\n", dec.decode(out.stderr));
    }),
});

Deno.test("compile: arguments carry target, output, config, quiet and the entry", () => {
  const t = findTarget("linux-arm64");
  const entry = new URL("file:///tmp/x/entry.ts");
  const args = compileArgs({ target: t, version: "v1", output: "/tmp/out/aztunnel", entry });
  assert.equal(args[0], "compile");
  assert.equal(args[args.indexOf("--target") + 1], "aarch64-unknown-linux-gnu");
  assert.equal(args[args.indexOf("--output") + 1], "/tmp/out/aztunnel");
  assert.equal(args[args.indexOf("--config") + 1], rootPath("deno.json"));
  assert.ok(args.includes("--quiet") && args.includes("--frozen"));
  assert.equal(args.at(-1), entry.href);
});

// ---------------------------------------------------------------------------------------------
// version stamping

Deno.test("version: precedence explicit > AZTUNNEL_VERSION > git describe > dev", async () => {
  const env = (v?: string) => (n: string) => n === "AZTUNNEL_VERSION" ? v : undefined;
  await withTempDir(async (notARepo) => {
    assert.equal(await gitDescribe(notARepo), undefined);
    assert.equal(
      await resolveVersion({ explicit: "v9", env: env("dev-abc"), cwd: notARepo }),
      "v9",
    );
    assert.equal(
      await resolveVersion({ env: env("dev-0123456789ab"), cwd: notARepo }),
      "dev-0123456789ab",
    );
    assert.equal(await resolveVersion({ env: env(), cwd: notARepo }), "dev");
  });
  const described = await gitDescribe();
  const fromRepo = await resolveVersion({ env: env() });
  assert.equal(fromRepo, described ?? "dev");
  assert.throws(() => checkVersion('v1"; evil()'), /invalid version/);
  assert.throws(() => checkVersion("../x"), /invalid version/);
  assert.equal(checkVersion("v1.2.3-4-gdeadbee-dirty"), "v1.2.3-4-gdeadbee-dirty");
  assert.deepEqual(takeVersionFlag(["a", "--version", "v2", "b"]), {
    version: "v2",
    rest: ["a", "b"],
  });
  assert.deepEqual(takeVersionFlag(["--version=v3"]), { version: "v3", rest: [] });
  assert.throws(() => takeVersionFlag(["--version"]), /needs a value/);
});

Deno.test("version: the generated entry stamps VERSION before the program loads", async () => {
  await withTempDir(async (dir) => {
    const main = join(dir, "main.ts");
    // Reads VERSION while the module graph is evaluated, as `program.version(VERSION)` does.
    await Deno.writeTextFile(
      main,
      `import { VERSION } from ${JSON.stringify(new URL("lib/version.ts", ROOT).href)};\n` +
        `const atLoad = VERSION;\nconsole.log(atLoad);\n`,
    );
    const buildDir = new URL(`file://${dir}/build/`);
    const entry = await writeBuildEntry(buildDir, "v1.2.3-7-gabcdef0", new URL(`file://${main}`));
    const stamped = await run(Deno.execPath(), ["run", "--no-config", fileURLToPath(entry)]);
    assert.equal(stamped.stdout, "v1.2.3-7-gabcdef0\n", stamped.stderr);
    const plain = await run(Deno.execPath(), ["run", "--no-config", main]);
    assert.equal(plain.stdout, "dev\n", plain.stderr);
  });
});

Deno.test("compile: deno compile accepts the arguments (binary built when denort is reachable)", async () => {
  await withTempDir(async (dir) => {
    const main = join(dir, "main.ts");
    await Deno.writeTextFile(
      main,
      `import { VERSION } from ${JSON.stringify(new URL("lib/version.ts", ROOT).href)};\n` +
        `console.log(VERSION);\n`,
    );
    const entry = await writeBuildEntry(
      new URL(`file://${dir}/build/`),
      "v0.0.1-test",
      new URL(`file://${main}`),
    );
    const target = hostTarget();
    const output = join(dir, binaryName(target));
    const res = await run(
      Deno.execPath(),
      compileArgs({ target, version: "v0.0.1-test", output, entry }),
    );
    if (res.code === 0) {
      // A connected machine: the binary must run with its baked permissions and stamped version.
      const out = await run(output, []);
      assert.equal(out.stdout, "v0.0.1-test\n", out.stderr);
    } else {
      // Offline (no dl.deno.land): flags, config, type check and module graph were all accepted;
      // only fetching the denort base binary failed.
      assert.match(res.stderr, /Setting up base binary|denort/, res.stderr);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// release bundles

Deno.test("release: crc32 and tar layout", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  const t = tar([{ name: "a", data: new Uint8Array(3), mode: 0o644 }], 0);
  assert.equal(t.length, 512 + 512 + 1024);
  assert.equal(dec.decode(t.subarray(257, 263)), "ustar\0");
});

Deno.test("release: bundles, SHA256SUMS and reproducibility", async () => {
  const haveTools = await hasCommand("sha256sum") && await hasCommand("tar") &&
    await hasCommand("unzip");
  await withTempDir(async (dir) => {
    const dist = join(dir, "dist");
    await Deno.mkdir(dist);
    const linuxBin = new TextEncoder().encode("#!/bin/sh\necho fake aztunnel\n".repeat(100));
    const winBin = crypto.getRandomValues(new Uint8Array(60_000));
    await Deno.writeFile(join(dist, "aztunnel-linux-amd64"), linuxBin);
    await Deno.writeFile(join(dist, "aztunnel-windows-amd64.exe"), winBin);
    const readme = join(dir, "README.md");
    await Deno.writeTextFile(readme, "# aztunnel\n");
    const opts = {
      version: "v1.2.3",
      binDir: dist,
      readme,
      license: rootPath("LICENSE"),
      mtime: 1_700_000_000,
    };
    const out = join(dir, "out");
    const written = await buildRelease({ ...opts, outDir: out });
    assert.deepEqual(written, [
      "aztunnel-v1.2.3-linux-amd64.tar.gz",
      "aztunnel-v1.2.3-windows-amd64.zip",
    ]);
    const sums = await Deno.readTextFile(join(out, "SHA256SUMS"));
    assert.match(
      sums,
      /^[0-9a-f]{64} {2}aztunnel-v1\.2\.3-linux-amd64\.tar\.gz\n[0-9a-f]{64} {2}aztunnel-v1\.2\.3-windows-amd64\.zip\n$/,
    );

    // Same inputs, same bytes.
    await buildRelease({ ...opts, outDir: join(dir, "again") });
    assert.equal(await Deno.readTextFile(join(dir, "again", "SHA256SUMS")), sums);

    await assert.rejects(
      buildRelease({ ...opts, binDir: join(dir, "empty"), outDir: join(dir, "x") }),
      /no binaries/,
    );
    if (!haveTools) return;

    const check = await run("sha256sum", ["-c", "SHA256SUMS"], out);
    assert.equal(check.code, 0, check.stdout + check.stderr);

    const listing = await run("tar", [
      "-tvzf",
      "aztunnel-v1.2.3-linux-amd64.tar.gz",
      "--numeric-owner",
    ], out);
    assert.equal(listing.code, 0, listing.stderr);
    const rows = listing.stdout.trim().split("\n").map((l) => l.split(/\s+/));
    assert.deepEqual(rows.map((r) => r.at(-1)), ["LICENSE", "README.md", "aztunnel"]);
    assert.deepEqual(rows.map((r) => r[0]), ["-rw-r--r--", "-rw-r--r--", "-rwxr-xr-x"]);
    assert.ok(rows.every((r) => r[1] === "0/0"));
    const x = join(dir, "x-tar");
    await Deno.mkdir(x);
    assert.equal((await run("tar", ["-xzf", join(out, written[0]), "-C", x])).code, 0);
    assert.deepEqual(await Deno.readFile(join(x, "aztunnel")), linuxBin);
    assert.deepEqual(await Deno.readFile(join(x, "LICENSE")), await Deno.readFile(opts.license));

    const z = join(dir, "x-zip");
    const unz = await run("unzip", ["-q", join(out, written[1]), "-d", z]);
    assert.equal(unz.code, 0, unz.stdout + unz.stderr);
    assert.deepEqual(await Deno.readFile(join(z, "aztunnel.exe")), winBin);
    assert.equal(await Deno.readTextFile(join(z, "README.md")), "# aztunnel\n");
    const zinfo = await run("unzip", ["-Z", join(out, written[1])]);
    assert.match(zinfo.stdout, /-rwxr-xr-x.*aztunnel\.exe/);
    const test = await run("unzip", ["-t", join(out, written[1])]);
    assert.match(test.stdout, /No errors detected/);
  });
});

Deno.test("release: the version comes from compile's dist/VERSION, not from resolving again", async () => {
  await withTempDir(async (dir) => {
    const dist = join(dir, "dist");
    await Deno.mkdir(dist);
    await Deno.writeTextFile(join(dist, "aztunnel-linux-amd64"), "fake linux binary\n");
    await Deno.writeTextFile(join(dist, "aztunnel-darwin-arm64"), "fake darwin binary\n");
    await writeVersionFile(dist, "v9.8.7");
    assert.equal(await Deno.readTextFile(join(dist, "VERSION")), "v9.8.7\n");
    assert.equal(await readVersionFile(dist), "v9.8.7");

    const warnings: string[] = [];
    const resolved = (explicit?: string) => Promise.resolve(explicit ?? "v0.0.0-elsewhere");
    const o = { binDir: dist, resolve: resolved, warn: (m: string) => warnings.push(m) };
    assert.equal(await releaseVersion(o), "v9.8.7");
    assert.equal(await releaseVersion({ ...o, explicit: "v9.8.7" }), "v9.8.7");
    await assert.rejects(
      releaseVersion({ ...o, explicit: "v1.0.0" }),
      /--version=v1\.0\.0 disagrees with .*VERSION \(v9\.8\.7\)/,
    );
    assert.deepEqual(warnings, []);

    // The script itself, with a version in the environment that the binaries were not built with.
    const out = join(dir, "out");
    const script = async (env: Record<string, string>) => {
      const r = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--quiet",
          rootPath("scripts/release.ts"),
          `--dist=${dist}`,
          `--out=${out}`,
        ],
        env,
        stdout: "piped",
        stderr: "piped",
      }).output();
      return { code: r.code, stderr: dec.decode(r.stderr) };
    };
    const r = await script({ AZTUNNEL_VERSION: "v0.0.0-elsewhere", SOURCE_DATE_EPOCH: "0" });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stderr,
      "wrote aztunnel-v9.8.7-linux-amd64.tar.gz\nwrote aztunnel-v9.8.7-darwin-arm64.tar.gz\n",
    );

    // Without VERSION (binaries from elsewhere): resolved again, and said so.
    await Deno.remove(join(dist, "VERSION"));
    assert.equal(await releaseVersion(o), "v0.0.0-elsewhere");
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /VERSION is missing .* naming the bundles v0\.0\.0-elsewhere/);
    const again = await script({ AZTUNNEL_VERSION: "v5.5.5", SOURCE_DATE_EPOCH: "0" });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /^release: warning: .*VERSION is missing/);
    assert.match(again.stderr, /wrote aztunnel-v5\.5\.5-linux-amd64\.tar\.gz\n/);
  });
});

Deno.test("compile: a new version in dist/ flags other targets' binaries as stale", async () => {
  await withTempDir(async (dir) => {
    const linux = findTarget("linux-amd64");
    const win = findTarget("windows-amd64");
    assert.deepEqual(await staleBinaries(dir, [linux], "v2"), []);
    await Deno.writeTextFile(join(dir, binaryName(linux)), "old");
    await Deno.writeTextFile(join(dir, binaryName(win)), "old");
    await writeVersionFile(dir, "v1");
    assert.deepEqual(await staleBinaries(dir, [linux], "v1"), []);
    assert.deepEqual(await staleBinaries(dir, [linux], "v2"), ["aztunnel-windows-amd64.exe"]);
    assert.deepEqual(await staleBinaries(dir, TARGETS, "v2"), []);
  });
});

Deno.test("release: bundle names and per-OS archive type", async () => {
  const docs = { readme: new Uint8Array([1]), license: new Uint8Array([2]) };
  const gz = await makeBundle(findTarget("darwin-arm64"), new Uint8Array([3]), docs, 0);
  assert.deepEqual([...gz.subarray(0, 2)], [0x1f, 0x8b]);
  const zipped = await makeBundle(findTarget("windows-amd64"), new Uint8Array([3]), docs, 0);
  assert.equal(dec.decode(zipped.subarray(0, 2)), "PK");
  assert.equal(bundleName("v1", findTarget("darwin-arm64")), "aztunnel-v1-darwin-arm64.tar.gz");
  assert.equal(bundleName("v1", findTarget("windows-x64")), "aztunnel-v1-windows-amd64.zip");
});

// ---------------------------------------------------------------------------------------------
// Dockerfiles, systemd and Kubernetes docs (structure; nothing here can be built or applied)

Deno.test("docker: variants build with this Deno version and run non-root", async () => {
  const bases = { scratch: "scratch", alpine: "alpine:", bookworm: "debian:bookworm-slim" };
  for (const [variant, base] of Object.entries(bases)) {
    const text = await Deno.readTextFile(rootPath(`Dockerfile.${variant}`));
    assert.match(
      text,
      new RegExp(`^ARG DENO_VERSION=${Deno.version.deno.replaceAll(".", "\\.")}$`, "m"),
      variant,
    );
    assert.match(
      text,
      /^FROM --platform=\$BUILDPLATFORM denoland\/deno:\$\{DENO_VERSION\} AS build$/m,
    );
    assert.match(text, /scripts\/compile\.ts "linux-\$\{TARGETARCH\}" --output=\/out\/aztunnel/);
    const stages = [...text.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    assert.ok(stages.at(-1)!.replace("${ALPINE_VERSION}", "").startsWith(base), `${variant} base`);
    assert.match(text, /^USER 65532:65532$/m);
    assert.match(text, /^ENTRYPOINT \["\/usr\/local\/bin\/aztunnel"\]$/m);
    assert.match(text, /ca-certificates/);
  }
  const ignore = await Deno.readTextFile(rootPath(".dockerignore"));
  for (const p of [".git", "dist", "tests"]) assert.match(ignore, new RegExp(`^${p}$`, "m"));
});

Deno.test("systemd: listener unit has restart, drain and hardening settings", async () => {
  const unit = await Deno.readTextFile(rootPath("docs/systemd/aztunnel-listener.service"));
  const get = (key: string) =>
    [...unit.matchAll(new RegExp(`^${key}=(.*)$`, "gm"))].map((m) => m[1]);
  assert.deepEqual(get("EnvironmentFile"), ["/etc/aztunnel/listener.env"]);
  assert.match(get("ExecStart")[0], /^\/usr\/local\/bin\/aztunnel relay-listener --allow /);
  const expected: Record<string, string> = {
    Restart: "on-failure",
    DynamicUser: "yes",
    NoNewPrivileges: "yes",
    ProtectSystem: "strict",
    ProtectHome: "yes",
    PrivateTmp: "yes",
    CapabilityBoundingSet: "",
    RestrictAddressFamilies: "AF_INET AF_INET6 AF_UNIX",
    KillSignal: "SIGTERM",
  };
  for (const [k, v] of Object.entries(expected)) assert.deepEqual(get(k), [v], k);
  assert.match(get("MemoryMax")[0], /^\d+[KMG]$/);
  assert.ok(parseInt(get("TimeoutStopSec")[0]) > 30, "TimeoutStopSec above the drain deadline");
  assert.deepEqual(get("MemoryDenyWriteExecute"), [], "V8's JIT needs W+X pages");
  const env = await Deno.readTextFile(rootPath("docs/systemd/listener.env.example"));
  assert.match(env, /^AZTUNNEL_RELAY_NAME=/m);
  assert.match(env, /^AZTUNNEL_HYCO_NAME=/m);
});

Deno.test({
  name: "systemd: systemd-analyze verify accepts the unit",
  ignore: !(await hasCommand("systemd-analyze")),
  fn: () =>
    withTempDir(async (dir) => {
      // verify insists that ExecStart's binary and EnvironmentFile exist; stand them in.
      const unit = (await Deno.readTextFile(rootPath("docs/systemd/aztunnel-listener.service")))
        .replaceAll("/usr/local/bin/aztunnel", "/bin/true")
        .replace("EnvironmentFile=/", "EnvironmentFile=-/");
      const path = join(dir, "aztunnel-listener.service");
      await Deno.writeTextFile(path, unit);
      const res = await run("systemd-analyze", ["verify", path], dir);
      assert.equal(res.code, 0, res.stdout + res.stderr);
    }),
});

/**
 * Splits a Kubernetes manifest into documents and checks the structure needed here: no tabs,
 * two-space indentation, every line a key, a list item, a comment or a continuation.
 */
function yamlDocuments(text: string): string[] {
  for (const [i, line] of text.split("\n").entries()) {
    assert.ok(!line.includes("\t"), `tab on line ${i + 1}`);
    const indent = line.length - line.trimStart().length;
    assert.equal(indent % 2, 0, `odd indentation on line ${i + 1}`);
  }
  return text.split(/^---$/m).map((d) => d.trim()).filter(Boolean);
}

for (
  const [file, role, probeArgs] of [
    ["listener-sidecar.yaml", "relay-listener", ["--allow", "127.0.0.1:8080"]],
    ["sender-sidecar.yaml", "relay-sender", ["port-forward", "127.0.0.1:8080"]],
  ] as const
) {
  Deno.test(`kubernetes: ${file} has secretRef, probes and a locked-down sidecar`, async () => {
    const docs = yamlDocuments(await Deno.readTextFile(rootPath(`docs/kubernetes/${file}`)));
    assert.deepEqual(docs.map((d) => /^kind: (\w+)$/m.exec(d)?.[1]), [
      "ConfigMap",
      "Secret",
      "Deployment",
    ]);
    const deploy = docs[2];
    const sidecar = deploy.slice(deploy.indexOf("- name: aztunnel"));
    assert.match(sidecar, /image: registry\.example\.com\/aztunnel:/);
    // The Go tool's image serves no /healthz or /readyz: its probes would restart the pod forever.
    assert.doesNotMatch(sidecar, /philsphicas/);
    const argsBlock = /^ {10}args:\n((?: {12}- .*\n)+)/m.exec(sidecar)?.[1] ?? "";
    const args = argsBlock.trimEnd().split("\n").map((l) => l.trim().slice(2));
    assert.equal(args[0], role);
    for (const a of probeArgs) assert.ok(args.includes(a), a);
    assert.deepEqual(args.slice(-2), ["--metrics-addr", "0.0.0.0:9090"]);
    assert.match(sidecar, /secretRef:\n\s+name: aztunnel-\w+-sas/);
    assert.match(sidecar, /livenessProbe:\n\s+httpGet:\n\s+path: \/healthz\n\s+port: metrics/);
    assert.match(sidecar, /readinessProbe:\n\s+httpGet:\n\s+path: \/readyz\n\s+port: metrics/);
    assert.match(sidecar, /containerPort: 9090/);
    for (
      const s of [
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
        'drop: ["ALL"]',
      ]
    ) {
      assert.ok(sidecar.includes(s), s);
    }
  });
}

Deno.test("docs: azure-setup.md keeps the anchors the README links to", async () => {
  const md = await Deno.readTextFile(rootPath("docs/azure-setup.md"));
  const anchors = [...md.matchAll(/^#{2,3} (.+)$/gm)].map((m) =>
    m[1].toLowerCase().replace(/[^a-z0-9 -]/g, "").replace(/ /g, "-")
  );
  for (
    const a of [
      "2a-deploy-a-listener-on-an-azure-vm-with-managed-identity",
      "3-authentication-with-sas-keys",
    ]
  ) {
    assert.ok(anchors.includes(a), a);
  }
  for (
    const cmd of [
      "az relay namespace create",
      "az relay hyco create",
      "az relay hyco authorization-rule create",
      "--rights Listen",
      "--rights Send",
      '"Azure Relay Listener"',
      '"Azure Relay Sender"',
      "--assign-identity",
    ]
  ) {
    assert.ok(md.includes(cmd), cmd);
  }
});

Deno.test("license: MIT with the project copyright", async () => {
  const text = await Deno.readTextFile(rootPath("LICENSE"));
  assert.match(text, /^MIT License\n\nCopyright \(c\) 2026 aztunnel contributors\n/);
});
