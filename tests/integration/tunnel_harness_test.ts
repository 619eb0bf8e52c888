/**
 * In-process stack for the tunnel integration tests: the local relay (lib/server), a listener
 * service, targets, and log capture with event waits. A helper module: it registers no tests.
 */
import { configureLogging, getLogger, resetLogging } from "../../lib/observe/log.ts";
import { startRelayServer } from "../../lib/server/mod.ts";
import { parseRelayEndpoint } from "../../lib/relay/endpoint.ts";
import { SasTokenProvider } from "../../lib/relay/token.ts";
import { type ListenerOptions, runListener } from "../../lib/listener/service.ts";
import type { RelayConfig } from "../../lib/sender/open_tunnel.ts";

export const enc = new TextEncoder();
export const dec = new TextDecoder();

/** Captured log lines; `waitFor` resolves when a matching line has been (or gets) logged. */
export class LogCapture {
  readonly lines: string[] = [];
  #waiters: { re: RegExp; resolve: (line: string) => void }[] = [];

  push(line: string): void {
    this.lines.push(line);
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.re.test(line)) return true;
      w.resolve(line);
      return false;
    });
  }

  /** The first line matching `re`; rejects after `deadlineMs` so a wrong pattern fails, not hangs. */
  waitFor(re: RegExp, deadlineMs = 20_000): Promise<string> {
    const hit = this.lines.find((l) => re.test(l));
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const waiter = {
        re,
        resolve: (line: string) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`no log line ${re} within ${deadlineMs} ms:\n${this.lines.join("")}`));
      }, deadlineMs);
      this.#waiters.push(waiter);
    });
  }

  count(re: RegExp): number {
    return this.lines.filter((l) => re.test(l)).length;
  }
}

export interface Stack {
  logs: LogCapture;
  relay: RelayConfig;
  /** Stops the listener (drain) and then the relay; resolves when everything is released. */
  stopListener(): Promise<void>;
  close(): Promise<void>;
}

const KEY_NAME = "test-policy";
const KEY = "c2VjcmV0LWtleS1mb3ItdGVzdHM=";

/** Relay + listener (connected). `listener` overrides listener options. */
export async function startStack(
  listener: Partial<Omit<ListenerOptions, "endpoint" | "entity" | "tokens" | "signal">> = {},
): Promise<Stack> {
  const logs = new LogCapture();
  await configureLogging({ level: "debug", write: (l) => logs.push(l) });
  const server = await startRelayServer({
    bind: "127.0.0.1:0",
    policies: [{ name: KEY_NAME, key: KEY, rights: ["Listen", "Send", "Manage"] }],
    logger: getLogger({ side: "relay" }),
  });
  const endpoint = parseRelayEndpoint(server.url);
  const tokens = new SasTokenProvider(KEY_NAME, KEY);
  const relay: RelayConfig = { endpoint, entity: "hc", tokens, retryBaseMs: 50 };
  const ac = new AbortController();
  const up = Promise.withResolvers<void>();
  const running = runListener({
    endpoint,
    entity: "hc",
    tokens,
    allowlist: null,
    signal: ac.signal,
    logger: getLogger({ side: "listener" }),
    onConnectedChange: (isUp) => isUp && up.resolve(),
    handler: { pingIntervalMs: 0 },
    ...listener,
  });
  await up.promise;
  let stopped: Promise<void> | undefined;
  const stopListener = () => {
    ac.abort(new DOMException("shutdown requested", "AbortError"));
    return stopped ??= running;
  };
  return {
    logs,
    relay,
    stopListener,
    async close() {
      await stopListener();
      await server.close();
      await resetLogging();
    },
  };
}

/** A TCP target on 127.0.0.1 running `serve` for each connection. */
export function startTarget(serve: (conn: Deno.TcpConn) => Promise<void>) {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const tasks = new Set<Promise<void>>();
  const accepting = (async () => {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await l.accept();
      } catch {
        return;
      }
      const t = serve(conn).catch(() => {}).finally(() => {
        try {
          conn.close();
        } catch {
          // closed by serve
        }
        tasks.delete(t);
      });
      tasks.add(t);
    }
  })();
  return {
    port: l.addr.port,
    addr: `127.0.0.1:${l.addr.port}`,
    async close() {
      l.close();
      await accepting;
      await Promise.all([...tasks]);
    },
  };
}

/** Reads until EOF. */
export async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    parts.push(buf.slice(0, n));
  }
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

export async function readExact(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const buf = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    const r = await conn.read(buf.subarray(off));
    if (r === null) throw new Error(`EOF after ${off} of ${n} bytes`);
    off += r;
  }
  return buf;
}

export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/** Echo: request bytes back upper-cased until EOF, then a trailer and a half-close. */
export async function upperEcho(conn: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    await writeAll(conn, enc.encode(dec.decode(buf.subarray(0, n)).toUpperCase()));
  }
  await writeAll(conn, enc.encode("<end>"));
  await conn.closeWrite();
  while (await conn.read(buf) !== null) { /* until the tunnel closes */ }
}

/** Plain echo until EOF. */
export async function echo(conn: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) return;
    await writeAll(conn, buf.subarray(0, n));
  }
}
