/**
 * Real child processes for the e2e tests and the benchmark: the aztunnel CLI (`deno run -A main.ts …`)
 * or any program, with stderr collected as lines so tests wait on log events (never on sleeps), a kill
 * that always awaits the exit, and RSS sampling from /proc. The second half starts the usual cast
 * (relay-server, listener, port-forward, SOCKS5 proxy) and reads their bound addresses from the logs.
 */
import { deadline } from "../../lib/async.ts";

const decoder = new TextDecoder();

/** The repository root, so the CLI runs the same way from any working directory. */
export const REPO_ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);
/** The entry module under test; `AZTUNNEL_E2E_MAIN` points the suite at another build of it. */
export const MAIN_TS = Deno.env.get("AZTUNNEL_E2E_MAIN") || `${REPO_ROOT}main.ts`;

/** Echo every child's output to our stderr (debugging a failing test): `E2E_VERBOSE=1`. */
const VERBOSE = Deno.env.get("E2E_VERBOSE") === "1";

export interface SpawnOptions {
  /** Added to (not replacing) the inherited environment. */
  env?: Record<string, string>;
  stdin?: "piped" | "null";
  /** "lines" collects stdout like stderr; "piped" leaves `child.stdout` to the caller. */
  stdout?: "lines" | "piped" | "null";
  cwd?: string;
  /** Shown in error messages and verbose output. */
  name?: string;
}

export interface MemSample {
  /** Resident set size now, in bytes. */
  rss: number;
  /** Peak resident set size so far, in bytes. */
  hwm: number;
}

type Stream = "stderr" | "stdout";

/** A running child process. Always `await using` it (or call `kill()`): disposal never leaks. */
export class Proc implements AsyncDisposable {
  readonly name: string;
  readonly child: Deno.ChildProcess;
  readonly pid: number;
  readonly stderrLines: string[] = [];
  readonly stdoutLines: string[] = [];
  /** Resolves once the process exited and every collected pipe reached EOF. */
  readonly done: Promise<Deno.CommandStatus>;
  #status?: Deno.CommandStatus;
  #streamsOpen = 0;
  #waiters = new Set<() => void>();
  #stdinPiped: boolean;
  #stdoutPiped: boolean;

  constructor(cmd: string, args: string[], opts: SpawnOptions = {}) {
    this.name = opts.name ?? cmd.split("/").pop() ?? cmd;
    const stdoutMode = opts.stdout ?? "null";
    const child = new Deno.Command(cmd, {
      args,
      cwd: opts.cwd,
      env: { NO_COLOR: "1", RUST_BACKTRACE: "0", ...opts.env },
      stdin: opts.stdin ?? "null",
      stdout: stdoutMode === "null" ? "null" : "piped",
      stderr: "piped",
    }).spawn();
    this.child = child;
    this.pid = child.pid;
    this.#stdinPiped = opts.stdin === "piped";
    this.#stdoutPiped = stdoutMode === "piped";
    const pumps = [this.#collect(this.child.stderr, this.stderrLines, "stderr")];
    if (stdoutMode === "lines") {
      pumps.push(this.#collect(this.child.stdout, this.stdoutLines, "stdout"));
    }
    this.done = (async () => {
      const status = await child.status;
      this.#status = status;
      this.#notify();
      await Promise.all(pumps);
      return status;
    })();
  }

  async #collect(stream: ReadableStream<Uint8Array>, into: string[], which: Stream) {
    this.#streamsOpen++;
    let pending = "";
    const push = (line: string) => {
      into.push(line);
      if (VERBOSE) console.error(`[${this.name}:${this.pid} ${which}] ${line}`);
    };
    try {
      for await (const chunk of stream) {
        pending += decoder.decode(chunk, { stream: true });
        const parts = pending.split("\n");
        pending = parts.pop() ?? "";
        for (const p of parts) push(p);
        if (parts.length > 0) this.#notify();
      }
    } catch {
      // the pipe broke because the process died: what was read is all there is
    } finally {
      if (pending !== "") push(pending);
      this.#streamsOpen--;
      this.#notify();
    }
  }

  #notify() {
    for (const w of [...this.#waiters]) w();
  }

  /** The exit status once the process has exited. */
  get exitStatus(): Deno.CommandStatus | undefined {
    return this.#status;
  }

  /** Everything the process wrote to stderr so far. */
  get stderr(): string {
    return this.stderrLines.join("\n");
  }

  get stdout(): string {
    return this.stdoutLines.join("\n");
  }

  /**
   * Resolves with the first line (from index `from` on) matching `re`; rejects at the deadline or when
   * the stream ended without a match, with the output so far in the message.
   */
  waitForLine(
    re: RegExp,
    deadlineMs = 20_000,
    opts: { from?: number; stream?: Stream } = {},
  ): Promise<RegExpMatchArray> {
    const lines = opts.stream === "stdout" ? this.stdoutLines : this.stderrLines;
    let next = opts.from ?? 0;
    const scan = (): RegExpMatchArray | null => {
      for (; next < lines.length; next++) {
        const m = lines[next].match(re);
        if (m) return m;
      }
      return null;
    };
    return this.#waitUntil(
      () => scan(),
      () => this.#status !== undefined && this.#streamsOpen === 0,
      deadlineMs,
      `line ${re}`,
    );
  }

  /** Resolves with the exit status; at the deadline the process gets SIGKILL and this rejects. */
  async wait(deadlineMs = 20_000): Promise<Deno.CommandStatus> {
    try {
      await this.#waitUntil(
        () => (this.#status ? true : null),
        () => false,
        deadlineMs,
        "exit",
      );
    } catch (err) {
      await this.kill("SIGKILL");
      throw err;
    }
    return await this.done;
  }

  #waitUntil<T>(
    check: () => T | null,
    hopeless: () => boolean,
    deadlineMs: number,
    what: string,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const finish = (fn: () => void) => {
        clearTimeout(timer);
        this.#waiters.delete(waiter);
        fn();
      };
      const waiter = () => {
        const v = check();
        if (v !== null) return finish(() => resolve(v));
        if (hopeless()) {
          finish(() => reject(new Error(`${this.name} ended before ${what}\n${this.#tail()}`)));
        }
      };
      const timer = setTimeout(
        () =>
          finish(() =>
            reject(new Error(`${this.name}: no ${what} within ${deadlineMs} ms\n${this.#tail()}`))
          ),
        deadlineMs,
      );
      this.#waiters.add(waiter);
      waiter();
    });
  }

  #tail(): string {
    const tail = (lines: string[]) => lines.slice(-40).join("\n");
    let text = `--- ${this.name} stderr ---\n${tail(this.stderrLines)}`;
    if (this.stdoutLines.length > 0) {
      text += `\n--- ${this.name} stdout ---\n${tail(this.stdoutLines)}`;
    }
    if (this.#status) text += `\n--- exit code ${this.#status.code} signal ${this.#status.signal}`;
    return text;
  }

  /** Sends `signal` (if still running) and resolves with the exit status once all pipes are done. */
  async kill(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    if (!this.#status) {
      try {
        this.child.kill(signal);
      } catch {
        // exited between the check and the kill
      }
    }
    return await this.done;
  }

  /** Writes to stdin (spawned with `stdin: "piped"`). */
  async writeStdin(data: Uint8Array | string): Promise<void> {
    const w = this.child.stdin.getWriter();
    try {
      await w.write(typeof data === "string" ? new TextEncoder().encode(data) : data);
    } finally {
      w.releaseLock();
    }
  }

  /** Closes stdin (EOF for the child). */
  async closeStdin(): Promise<void> {
    if (!this.#stdinPiped) return;
    this.#stdinPiped = false;
    try {
      await this.child.stdin.close();
    } catch {
      // already closed or the child is gone
    }
  }

  /** Current and peak RSS from /proc/<pid>/status; undefined once the process is gone. */
  mem(): MemSample | undefined {
    return readMem(this.pid);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.closeStdin();
    await this.kill("SIGKILL");
    // A stdout the caller never read must still be released, or the sanitizer reports it.
    if (this.#stdoutPiped && !this.child.stdout.locked) {
      await this.child.stdout.cancel().catch(() => {});
    }
  }
}

/** The argv after `deno` that runs the CLI with `args`. */
export function cliArgv(args: string[]): string[] {
  return ["run", "-A", "--quiet", MAIN_TS, ...args];
}

/** Spawns `deno run -A main.ts <args>`. */
export function spawnCli(args: string[], opts: SpawnOptions = {}): Proc {
  return new Proc(Deno.execPath(), cliArgv(args), {
    name: opts.name ?? `aztunnel ${args[0] ?? ""}`.trim(),
    ...opts,
  });
}

/** Reads VmRSS/VmHWM of a process (Linux). */
export function readMem(pid: number): MemSample | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/status`);
  } catch {
    return undefined;
  }
  const kb = (field: string) => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

export interface RunResult {
  code: number;
  signal: Deno.Signal | null;
  stdout: Uint8Array;
  stderr: string;
  /** stdout decoded as UTF-8. */
  text: string;
}

/** Runs a program to completion with optional stdin; SIGKILL and reject at the deadline. */
export async function run(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; stdin?: Uint8Array | string; deadlineMs?: number } = {},
): Promise<RunResult> {
  const ac = new AbortController();
  const deadlineMs = opts.deadlineMs ?? 30_000;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ac.abort();
  }, deadlineMs);
  try {
    const child = new Deno.Command(cmd, {
      args,
      env: { NO_COLOR: "1", RUST_BACKTRACE: "0", ...opts.env },
      stdin: opts.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      signal: ac.signal,
    }).spawn();
    const input = opts.stdin;
    const feed = input === undefined ? Promise.resolve() : (async () => {
      const w = child.stdin.getWriter();
      try {
        await w.write(typeof input === "string" ? new TextEncoder().encode(input) : input);
        await w.close();
      } catch {
        // the child stopped reading; its exit status tells the story
      }
    })();
    const [out] = await Promise.all([child.output(), feed]);
    if (timedOut) {
      throw new Error(
        `${cmd} ${args.join(" ")}: no exit within ${deadlineMs} ms\n${decoder.decode(out.stderr)}`,
      );
    }
    return {
      code: out.code,
      signal: out.signal,
      stdout: out.stdout,
      stderr: decoder.decode(out.stderr),
      text: decoder.decode(out.stdout),
    };
  } finally {
    clearTimeout(timer);
  }
}

/** `deno run -A main.ts <args>` to completion. */
export function runCli(
  args: string[],
  opts: { env?: Record<string, string>; stdin?: Uint8Array | string; deadlineMs?: number } = {},
): Promise<RunResult> {
  return run(Deno.execPath(), cliArgv(args), opts);
}

/** A port that was free a moment ago (for programs that cannot bind port 0 and report it). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** `p`, or an Error naming `what` at the deadline (lib/async's `deadline` with a test's label). */
export function withDeadline<T>(p: Promise<T>, deadlineMs: number, what: string): Promise<T> {
  return deadline(p, deadlineMs, {
    onTimeout: () => new Error(`${what}: no result within ${deadlineMs} ms`),
  });
}

// ---------------------------------------------------------------------------------------------
// The aztunnel cast on loopback.

/** A fresh SAS policy: the relay-server accepts it and every client signs with it. */
export function sasEnv(): Record<string, string> {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return {
    AZTUNNEL_KEY_NAME: "e2e",
    AZTUNNEL_KEY: btoa(String.fromCharCode(...bytes)),
    // A proxy from the environment must never see loopback traffic.
    NO_PROXY: "127.0.0.1,localhost",
    no_proxy: "127.0.0.1,localhost",
  };
}

export interface RelayServer extends AsyncDisposable {
  proc: Proc;
  /** `ws://127.0.0.1:PORT` for `--relay`. */
  url: string;
  /** host:port */
  addr: string;
  /** The SAS environment every client of this relay needs. */
  env: Record<string, string>;
}

const LOG_ARGS = ["--log-level", "debug"];

/** The value of attribute `key` in a logfmt or JSON log line. */
export function logAttr(line: string, key: string): string | undefined {
  if (line.trimStart().startsWith("{")) {
    const v = (JSON.parse(line) as Record<string, unknown>)[key];
    return v === undefined ? undefined : String(v);
  }
  const m = new RegExp(`(?:^|\\s)${key}=("(?:[^"\\\\]|\\\\.)*"|\\S*)`).exec(line);
  if (!m) return undefined;
  return m[1].startsWith('"') ? JSON.parse(m[1]) as string : m[1];
}

/** `aztunnel relay-server --bind 127.0.0.1:0`, ready once it logged its address. */
export async function startRelayServer(
  opts: { env?: Record<string, string>; args?: string[]; globalArgs?: string[] } = {},
): Promise<RelayServer> {
  const env = opts.env ?? sasEnv();
  const proc = spawnCli(
    [
      ...(opts.globalArgs ?? LOG_ARGS),
      "relay-server",
      "--bind",
      "127.0.0.1:0",
      ...(opts.args ?? []),
    ],
    { env, name: "relay-server" },
  );
  try {
    const line = (await proc.waitForLine(/relay-server listening/)).input ?? "";
    return {
      proc,
      addr: logAttr(line, "addr") ?? "",
      url: logAttr(line, "url") ?? "",
      env,
      [Symbol.asyncDispose]: () => proc[Symbol.asyncDispose](),
    };
  } catch (err) {
    await proc.kill("SIGKILL");
    throw err;
  }
}

export interface CastOptions {
  hyco?: string;
  /** Flags placed before the command (`--log-format json`, `--log-level`). */
  globalArgs?: string[];
  /** Flags appended after the command's own. */
  args?: string[];
  /** Overrides the relay's environment (e.g. a wrong key). */
  env?: Record<string, string>;
  name?: string;
}

function relayFlags(relay: RelayServer, o: CastOptions): string[] {
  return ["--relay", relay.url, "--hyco", o.hyco ?? "e2e"];
}

/** `aztunnel relay-listener`, ready once `control_started` was logged. */
export async function startListener(
  relay: RelayServer,
  o: CastOptions & { allow?: string[] } = {},
): Promise<Proc> {
  const allow = (o.allow ?? ["127.0.0.1:*"]).flatMap((a) => ["--allow", a]);
  const proc = spawnCli(
    [
      ...(o.globalArgs ?? LOG_ARGS),
      "relay-listener",
      ...relayFlags(relay, o),
      ...allow,
      ...(o.args ?? []),
    ],
    { env: { ...relay.env, ...o.env }, name: o.name ?? "relay-listener" },
  );
  try {
    await proc.waitForLine(/control_started/);
    return proc;
  } catch (err) {
    await proc.kill("SIGKILL");
    throw err;
  }
}

export interface BoundProc extends AsyncDisposable {
  proc: Proc;
  port: number;
  addr: string;
}

async function bound(proc: Proc, re: RegExp): Promise<BoundProc> {
  try {
    const line = (await proc.waitForLine(re)).input ?? "";
    const addr = logAttr(line, "bind") ?? "";
    const port = Number(addr.slice(addr.lastIndexOf(":") + 1));
    return { proc, port, addr, [Symbol.asyncDispose]: () => proc[Symbol.asyncDispose]() };
  } catch (err) {
    await proc.kill("SIGKILL");
    throw err;
  }
}

/** `aztunnel relay-sender port-forward <target> -b 127.0.0.1:0`. */
export function startPortForward(
  relay: RelayServer,
  target: string,
  o: CastOptions = {},
): Promise<BoundProc> {
  return startSenderService(relay, "port-forward", [target], o);
}

/** `aztunnel relay-sender socks5-proxy -b 127.0.0.1:0`. */
export function startSocks5(relay: RelayServer, o: CastOptions = {}): Promise<BoundProc> {
  return startSenderService(relay, "socks5-proxy", [], o);
}

function startSenderService(
  relay: RelayServer,
  mode: "port-forward" | "socks5-proxy",
  positional: string[],
  o: CastOptions,
): Promise<BoundProc> {
  const proc = spawnCli(
    [
      ...(o.globalArgs ?? LOG_ARGS),
      "relay-sender",
      mode,
      ...positional,
      ...relayFlags(relay, o),
      "-b",
      "127.0.0.1:0",
      ...(o.args ?? []),
    ],
    { env: { ...relay.env, ...o.env }, name: o.name ?? mode },
  );
  return bound(proc, new RegExp(`${mode} listening`));
}

/** The arguments of `relay-sender connect` (pass to `runCli`, or to `cliArgv` for a ProxyCommand). */
export function connectArgs(relay: RelayServer, target: string, o: CastOptions = {}): string[] {
  return [
    ...(o.globalArgs ?? []),
    "relay-sender",
    "connect",
    ...relayFlags(relay, o),
    ...(o.args ?? []),
    target,
  ];
}
