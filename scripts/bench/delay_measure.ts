/** The delay model's three latencies: a new connection serially, 16 at once, a `connect` process. */
import { delay } from "../../lib/async.ts";
import { cliArgv, connectArgs, Proc, runCli } from "../../tests/helpers/proc.ts";
import { readExactly, writeAll } from "../../tests/helpers/servers.ts";
import type { DelayCast } from "./delay_cast.ts";

/** Connect to the port-forward, send one byte, wait for its echo: milliseconds. */
export async function echoTrip(port: number): Promise<number> {
  const started = performance.now();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    conn.setNoDelay(true);
    await writeAll(conn, new Uint8Array([42]));
    await readExactly(conn, 1);
    return performance.now() - started;
  } finally {
    conn.close();
  }
}

/** `count` trips one after another, `gapMs` apart (a user opening sessions, not a loop). */
export async function serialTrips(port: number, count: number, gapMs: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    out.push(await echoTrip(port));
    await delay(gapMs);
  }
  return out;
}

/**
 * `rounds` bursts of `width` trips started at once, `gapMs` apart (a page load, then reading it);
 * every trip's time, one array per round.
 */
export async function burstTrips(
  port: number,
  width: number,
  rounds: number,
  gapMs: number,
): Promise<number[][]> {
  const out: number[][] = [];
  for (let r = 0; r < rounds; r++) {
    if (r > 0) await delay(gapMs);
    out.push(await Promise.all(Array.from({ length: width }, () => echoTrip(port))));
  }
  return out;
}

/**
 * `width` clients at once, each uploading `bytes` and reading its echo: the aggregate upload rate
 * in MB/s (what a burst of bulk transfers gets, e.g. parallel downloads through one proxy).
 */
export async function bulkBurst(port: number, width: number, bytes: number): Promise<number> {
  const chunk = new Uint8Array(64 * 1024).fill(7);
  const one = async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      const writing = (async () => {
        for (let sent = 0; sent < bytes; sent += chunk.length) {
          await writeAll(conn, chunk.subarray(0, Math.min(chunk.length, bytes - sent)));
        }
      })();
      await Promise.all([writing, readExactly(conn, bytes)]);
    } finally {
      conn.close();
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: width }, one));
  return (width * bytes) / 1e6 / ((performance.now() - started) / 1000);
}

/**
 * One `relay-sender connect` process as ssh runs a ProxyCommand: from spawn to the echo of one
 * byte written to its stdin; then stdin closes and the process must exit.
 */
export async function connectTrip(cast: DelayCast, env: Record<string, string>): Promise<number> {
  const args = connectArgs(cast.senderRelay, cast.target, {
    hyco: cast.hyco,
    globalArgs: ["--log-level", "warn"],
    args: cast.caArgs,
  });
  const started = performance.now();
  await using proc = new Proc(Deno.execPath(), cliArgv(args), {
    env: { ...cast.senderRelay.env, ...env },
    stdin: "piped",
    stdout: "piped",
    name: "relay-sender connect",
  });
  await proc.writeStdin(new Uint8Array([42]));
  const reader = proc.child.stdout.getReader();
  try {
    const { value } = await reader.read();
    if (!value || value.length === 0) {
      throw new Error(`relay-sender connect: no echo\n${proc.stderr}`);
    }
    const took = performance.now() - started;
    await proc.closeStdin();
    while (!(await reader.read()).done) { /* drain to EOF */ }
    const status = await proc.wait();
    if (!status.success) throw new Error(`relay-sender connect exited ${status.code}`);
    return took;
  } finally {
    reader.releaseLock();
  }
}

export async function connectTrips(
  cast: DelayCast,
  count: number,
  env: Record<string, string> = {},
): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(await connectTrip(cast, env));
  return out;
}

/** The CLI's start-up alone (`aztunnel --version`), the part of `connect` no pool can remove. */
export async function startupTrips(count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const r = await runCli(["--version"]);
    if (r.code !== 0) throw new Error(`aztunnel --version exited ${r.code}\n${r.stderr}`);
    out.push(performance.now() - started);
  }
  return out;
}
