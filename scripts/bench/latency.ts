/** Loopback set-up latency and the memory of many idle tunnels. */
import type { Proc } from "../../tests/helpers/proc.ts";
import { readExactly, writeAll } from "../../tests/helpers/servers.ts";
import { MiB } from "./env.ts";
import { type SetupStats, summarize } from "./stats.ts";

/** Serial: connect, write 1 KiB, read it back, close; milliseconds per iteration. */
export async function setupLatency(port: number, iterations: number): Promise<SetupStats> {
  const payload = new Uint8Array(1024);
  crypto.getRandomValues(payload);
  const once = async () => {
    const started = performance.now();
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      conn.setNoDelay(true);
      await writeAll(conn, payload);
      await readExactly(conn, payload.length);
    } finally {
      conn.close();
    }
    return performance.now() - started;
  };
  for (let i = 0; i < 10; i++) await once(); // warm-up
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) samples.push(await once());
  return summarize(samples);
}

export interface IdleResult {
  tunnels: number;
  before: Record<string, number>;
  after: Record<string, number>;
  openMs: number;
}

/** Opens `count` tunnels (each proven with a 1-byte echo), samples RSS, then closes them all. */
export async function idleTunnels(
  port: number,
  procs: Record<string, Proc>,
  count: number,
): Promise<IdleResult> {
  const rss = () =>
    Object.fromEntries(Object.entries(procs).map(([k, p]) => [k, (p.mem()?.rss ?? NaN) / MiB]));
  const before = rss();
  const conns: Deno.TcpConn[] = [];
  const started = performance.now();
  try {
    // Batches keep the accept backlog and the relay's pending rendezvous reasonable.
    for (let i = 0; i < count; i += 50) {
      await Promise.all(Array.from({ length: Math.min(50, count - i) }, async () => {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        conns.push(conn);
        await writeAll(conn, new Uint8Array([7]));
        await readExactly(conn, 1);
      }));
    }
    const openMs = performance.now() - started;
    return { tunnels: conns.length, before, after: rss(), openMs };
  } finally {
    for (const c of conns) c.close();
  }
}
