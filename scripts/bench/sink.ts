/** Single-stream throughput: a counting sink and the client that pushes BENCH_BYTES into it. */
import { readExactly, type TcpTarget, writeAll } from "../../tests/helpers/servers.ts";
import { envNumber, MiB, progress } from "./env.ts";

export const BYTES = envNumber("BENCH_BYTES", 512 * MiB);
export const RUNS = envNumber("BENCH_RUNS", 3);

/**
 * A sink that reads an 8-byte big-endian length, then that many bytes, then answers one byte:
 * the sender's clock stops only when every byte has crossed.
 */
export function startSink(): TcpTarget {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  const serve = async (conn: Deno.Conn) => {
    const head = await readExactly(conn, 8);
    let left = Number(new DataView(head.buffer).getBigUint64(0));
    const buf = new Uint8Array(256 * 1024);
    while (left > 0) {
      const n = await conn.read(buf.subarray(0, Math.min(buf.length, left)));
      if (n === null) throw new Error(`sink: EOF with ${left} bytes to go`);
      left -= n;
    }
    await writeAll(conn, new Uint8Array([1]));
  };
  const loop = (async () => {
    try {
      for await (const conn of listener) {
        conns.add(conn);
        const t = serve(conn).catch((e) => progress(`sink: ${e}`)).finally(() => {
          conns.delete(conn);
          conn.close();
          tasks.delete(t);
        });
        tasks.add(t);
      }
    } catch {
      // closed
    }
  })();
  const port = (listener.addr as Deno.NetAddr).port;
  const close = async () => {
    listener.close();
    await loop;
    for (const c of conns) c.close();
    await Promise.all([...tasks]);
  };
  return {
    port,
    addr: `127.0.0.1:${port}`,
    accepted: 0,
    open: 0,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** MB/s (10^6 bytes per second) of one stream of `bytes` to the sink behind `port`. */
async function pushOnce(port: number, bytes: number): Promise<number> {
  const chunk = new Uint8Array(256 * 1024);
  crypto.getRandomValues(chunk.subarray(0, 65536));
  const started = performance.now();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    conn.setNoDelay(true);
    const head = new Uint8Array(8);
    new DataView(head.buffer).setBigUint64(0, BigInt(bytes));
    await writeAll(conn, head);
    for (let left = bytes; left > 0; left -= chunk.length) {
      await writeAll(conn, left >= chunk.length ? chunk : chunk.subarray(0, left));
    }
    await readExactly(conn, 1);
  } finally {
    conn.close();
  }
  return bytes / ((performance.now() - started) / 1000) / 1e6;
}

/** RUNS pushes of BYTES after a 16 MiB warm-up (JIT, TCP windows); MB/s each. */
export async function throughput(port: number): Promise<number[]> {
  await pushOnce(port, Math.min(BYTES, 16 * MiB));
  const out: number[] = [];
  for (let i = 0; i < RUNS; i++) out.push(await pushOnce(port, BYTES));
  return out;
}
