/**
 * WebSocket throughput and memory over loopback: lib/ws client → lib/ws server versus the
 * built-in WebSocketStream client → Deno.upgradeWebSocket, sender and receiver in separate
 * processes, binary messages of 32 KiB.
 *
 * Two scenarios per pair:
 * - "full speed": BENCH_WS_BYTES (default 1 GiB); MB/s is MiB over the wall time from the first
 *   send to the receiver's "done" reply.
 * - "reader at 32 MB/s": the receiving application consumes at 32 MB/s (BENCH_WS_SLOW_BYTES,
 *   default 256 MiB); shows whether receive backpressure keeps the receiver's memory bounded.
 * RSS figures are the processes' peak resident set (VmHWM).
 *
 *   deno run -A --unstable-net scripts/bench_ws.ts            # markdown table
 *   BENCH_WS_BYTES=$((128<<20)) deno run -A --unstable-net scripts/bench_ws.ts
 */

import { connectWebSocket } from "../lib/ws/client.ts";
import { serveHttp } from "../lib/ws/server.ts";

const MIB = 1024 * 1024;
const MESSAGE_SIZE = 32 * 1024;
const SLOW_RATE = 32 * 1000 * 1000;

type Impl = "lib" | "builtin";

interface ReceiverReport {
  bytes: number;
  peakRssMiB: number;
}

interface SenderReport {
  ms: number;
  peakRssMiB: number;
}

/** Minimal WebSocketStream shape (an --unstable-net API; typed here so `deno check` needs no flag). */
interface WebSocketStreamLike {
  readonly opened: Promise<{
    readable: ReadableStream<string | Uint8Array>;
    writable: WritableStream<string | Uint8Array>;
  }>;
  readonly closed: Promise<unknown>;
  close(info?: { closeCode?: number; reason?: string }): void;
}
type WebSocketStreamCtor = new (url: string) => WebSocketStreamLike;

function envBytes(name: string, fallback: number): number {
  const raw = Deno.env.get(name);
  if (!raw) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive byte count`);
  return Math.ceil(n / MESSAGE_SIZE) * MESSAGE_SIZE;
}

function peakRssMiB(): number {
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]);
    if (kb > 0) return kb / 1024;
  } catch {
    // Not Linux: fall back to the current RSS.
  }
  return Deno.memoryUsage().rss / MIB;
}

/** Sleeps as needed so that `done` bytes are not consumed faster than `rate` bytes/s. */
function pacer(rate: number | null): (done: number) => Promise<void> {
  const start = performance.now();
  return async (done) => {
    if (rate === null) return;
    const due = start + (done / rate) * 1000;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  };
}

// ---------- child roles ----------

async function libReceiver(total: number, rate: number | null): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let report!: (r: ReceiverReport) => void;
  const finished = new Promise<ReceiverReport>((r) => report = r);
  const server = serveHttp({
    listener,
    handler: async (req) => {
      const ws = await req.upgrade({ maxMessageSize: 64 * MIB });
      const pace = pacer(rate);
      let bytes = 0;
      while (bytes < total) {
        const m = await ws.receive();
        if (m === null) break;
        bytes += m.data.length;
        await pace(bytes);
      }
      await ws.send("done");
      await ws.close();
      report({ bytes, peakRssMiB: peakRssMiB() });
    },
  });
  console.log(String(server.addr.port));
  const result = await finished;
  await server.close();
  console.log(JSON.stringify(result));
}

async function builtinReceiver(total: number, rate: number | null): Promise<void> {
  let report!: (r: ReceiverReport) => void;
  const finished = new Promise<ReceiverReport>((r) => report = r);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req, { idleTimeout: 0 });
    socket.binaryType = "arraybuffer";
    // The event API cannot pause reading: a slow application can only queue.
    const queue: ArrayBuffer[] = [];
    let wake: (() => void) | null = null;
    socket.onmessage = (e) => {
      queue.push(e.data as ArrayBuffer);
      wake?.();
    };
    (async () => {
      const pace = pacer(rate);
      let bytes = 0;
      while (bytes < total) {
        const next = queue.shift();
        if (!next) {
          await new Promise<void>((r) => wake = r);
          wake = null;
          continue;
        }
        bytes += next.byteLength;
        await pace(bytes);
      }
      socket.send("done");
      report({ bytes, peakRssMiB: peakRssMiB() });
    })();
    return response;
  });
  console.log(String(server.addr.port));
  const result = await finished;
  await server.shutdown();
  console.log(JSON.stringify(result));
}

function payload(): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(MESSAGE_SIZE));
}

async function libSender(url: string, total: number): Promise<void> {
  const ws = await connectWebSocket(url);
  const chunk = payload();
  const start = performance.now();
  for (let sent = 0; sent < total; sent += MESSAGE_SIZE) await ws.send(chunk);
  const reply = await ws.receive();
  const ms = performance.now() - start;
  if (reply?.type !== "text" || reply.data !== "done") throw new Error("receiver did not finish");
  await ws.close();
  console.log(JSON.stringify({ ms, peakRssMiB: peakRssMiB() } satisfies SenderReport));
}

async function builtinSender(url: string, total: number): Promise<void> {
  const Ctor = (globalThis as unknown as { WebSocketStream?: WebSocketStreamCtor })
    .WebSocketStream;
  if (!Ctor) throw new Error("WebSocketStream needs --unstable-net");
  const wss = new Ctor(url);
  wss.closed.catch(() => {});
  const { readable, writable } = await wss.opened;
  const writer = writable.getWriter();
  const reader = readable.getReader();
  const chunk = payload();
  const start = performance.now();
  for (let sent = 0; sent < total; sent += MESSAGE_SIZE) {
    await writer.ready;
    writer.write(chunk).catch(() => {});
  }
  const reply = await reader.read();
  const ms = performance.now() - start;
  if (reply.value !== "done") throw new Error("receiver did not finish");
  wss.close({ closeCode: 1000 });
  await wss.closed.catch(() => {});
  console.log(JSON.stringify({ ms, peakRssMiB: peakRssMiB() } satisfies SenderReport));
}

// ---------- orchestration ----------

const decoder = new TextDecoder();

function spawnRole(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-net", new URL(import.meta.url).pathname, ...args],
    stdout: "piped",
    stderr: "inherit",
    env: { RUST_BACKTRACE: "0" },
  }).spawn();
}

/** Reads stdout lines of a child as they come. */
async function* lines(child: Deno.ChildProcess): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of child.stdout) {
    pending += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, nl);
      pending = pending.slice(nl + 1);
    }
  }
  if (pending) yield pending;
}

async function runPair(impl: Impl, total: number, rate: number | null) {
  const receiver = spawnRole(["receiver", impl, String(total), String(rate ?? 0)]);
  const out = lines(receiver);
  const port = (await out.next()).value;
  if (!port) throw new Error(`${impl} receiver did not start`);
  const sender = spawnRole(["sender", impl, `ws://127.0.0.1:${port}/bench`, String(total)]);
  const senderOut = await sender.output();
  if (!senderOut.success) throw new Error(`${impl} sender failed`);
  const send = JSON.parse(decoder.decode(senderOut.stdout).trim()) as SenderReport;
  const recvLine = (await out.next()).value;
  for await (const _ of out) { /* drain */ }
  const status = await receiver.status;
  if (!status.success || !recvLine) throw new Error(`${impl} receiver failed`);
  const recv = JSON.parse(recvLine) as ReceiverReport;
  if (recv.bytes !== total) throw new Error(`${impl} receiver got ${recv.bytes} of ${total} bytes`);
  const mib = total / MIB;
  return {
    pair: impl === "lib"
      ? "lib/ws client → lib/ws server"
      : "WebSocketStream → Deno.upgradeWebSocket",
    scenario: rate === null ? "full speed" : "reader at 32 MB/s",
    MiB: mib,
    "MB/s": Math.round(mib / (send.ms / 1000)),
    "sender RSS MiB": Math.round(send.peakRssMiB),
    "receiver RSS MiB": Math.round(recv.peakRssMiB),
  };
}

/** Runs every pair and scenario; one row each (for `deno task bench`). */
export async function benchWs(): Promise<Record<string, unknown>[]> {
  const total = envBytes("BENCH_WS_BYTES", 1024 * MIB);
  const slowTotal = envBytes("BENCH_WS_SLOW_BYTES", Math.min(total, 256 * MIB));
  const rows: Record<string, unknown>[] = [];
  for (const impl of ["lib", "builtin"] as const) rows.push(await runPair(impl, total, null));
  for (const impl of ["lib", "builtin"] as const) {
    rows.push(await runPair(impl, slowTotal, SLOW_RATE));
  }
  return rows;
}

export function markdownTable(rows: Record<string, unknown>[]): string {
  const cols = Object.keys(rows[0] ?? {});
  const line = (cells: unknown[]) => `| ${cells.map(String).join(" | ")} |`;
  return [line(cols), line(cols.map(() => "---")), ...rows.map((r) => line(cols.map((c) => r[c])))]
    .join("\n");
}

async function main(args: string[]): Promise<void> {
  const [role, impl, a, b] = args;
  if (role === "receiver") {
    const rate = Number(b) > 0 ? Number(b) : null;
    await (impl === "lib" ? libReceiver(Number(a), rate) : builtinReceiver(Number(a), rate));
    return;
  }
  if (role === "sender") {
    await (impl === "lib" ? libSender(a, Number(b)) : builtinSender(a, Number(b)));
    return;
  }
  console.log(markdownTable(await benchWs()));
}

if (import.meta.main) await main(Deno.args);
