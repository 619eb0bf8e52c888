/**
 * A TCP proxy that adds a one-way delay D in each direction, for the benchmark's delay model (a
 * relay far away; relay-server's `--latency` delays only messages, not handshakes).
 *
 * Every chunk is stamped when read and written out D later, from a queue per direction, so chunks
 * overlap in flight as on a real path instead of queueing behind one sleep each. A new connection
 * costs the TCP handshake's round trip: the proxy dials upstream D after accepting (the SYN's
 * trip), the client's bytes count as sent no earlier than 2·D after accept (when its connect would
 * have returned) and the upstream's no earlier than 3·D (when its accept would have). EOF travels
 * in order as a half-close; a broken read or write ends both sides D later or at once.
 */
import { closeQuietly, delay } from "../../lib/async.ts";
import type { HostPort } from "../../lib/net/host_port.ts";
import { writeAll } from "../../lib/net/write_all.ts";

export interface DelayProxyOptions {
  /** One-way delay D in milliseconds. */
  delayMs: number;
  /** Where connections go; a function when the upstream starts after the proxy (it names us). */
  upstream: HostPort | (() => HostPort);
  /** Bytes queued per direction before the proxy stops reading: the path's window (4 MiB). */
  windowBytes?: number;
}

export interface DelayProxy extends AsyncDisposable {
  readonly port: number;
  /** `127.0.0.1:PORT` */
  readonly addr: string;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections open right now. */
  readonly open: number;
  /** Stops accepting, cuts every open connection and waits until all of them are gone. */
  close(): Promise<void>;
}

const DEFAULT_WINDOW_BYTES = 4 * 1024 * 1024;

interface Item {
  /** performance.now() at which the item leaves. */
  readonly due: number;
  readonly data?: Uint8Array;
  readonly end?: "eof" | "error";
}

/** One direction's chunks in arrival order, with the waits of its reader (room) and writer (items). */
class DelayQueue {
  #items: Item[] = [];
  #bytes = 0;
  #waiters = new Set<() => void>();

  push(item: Item): void {
    this.#items.push(item);
    this.#bytes += item.data?.length ?? 0;
    this.#notify();
  }

  /** The next item, once there is one. */
  async take(signal: AbortSignal): Promise<Item> {
    await this.#until(() => this.#items.length > 0, signal);
    const item = this.#items.shift()!;
    this.#bytes -= item.data?.length ?? 0;
    this.#notify();
    return item;
  }

  /** Resolves while fewer than `limit` bytes are queued. */
  room(limit: number, signal: AbortSignal): Promise<void> {
    return this.#until(() => this.#bytes < limit, signal);
  }

  #notify() {
    for (const w of [...this.#waiters]) w();
  }

  #until(ready: () => boolean, signal: AbortSignal): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (fn: () => void) => {
        this.#waiters.delete(check);
        signal.removeEventListener("abort", onAbort);
        fn();
      };
      const check = () => {
        if (ready()) done(resolve);
      };
      const onAbort = () => done(() => reject(signal.reason));
      if (signal.aborted) return onAbort();
      this.#waiters.add(check);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }
}

/** Reads `src` into `queue`, stamping each chunk with `due()`, until EOF or an error. */
async function readInto(
  src: Deno.Conn,
  queue: DelayQueue,
  due: () => number,
  windowBytes: number,
  signal: AbortSignal,
): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  try {
    while (true) {
      await queue.room(windowBytes, signal);
      const n = await src.read(buf);
      if (n === null) return queue.push({ due: due(), end: "eof" });
      queue.push({ due: due(), data: buf.slice(0, n) });
    }
  } catch {
    queue.push({ due: due(), end: "error" });
  }
}

/** Writes the queue's items to `dst` when due; half-closes `dst` at EOF, throws on a break. */
async function writeFrom(
  queue: DelayQueue,
  dst: Promise<Deno.TcpConn>,
  signal: AbortSignal,
): Promise<void> {
  const conn = await dst;
  while (true) {
    const item = await queue.take(signal);
    await delay(item.due - performance.now(), { signal });
    if (item.end === "error") throw new Error("the other side broke");
    if (item.end === "eof") return await conn.closeWrite();
    await writeAll(conn, item.data!);
  }
}

/** One proxied connection, from accept until both directions ended (or one broke). */
async function runLink(
  client: Deno.TcpConn,
  opts: Required<Omit<DelayProxyOptions, "upstream">> & { upstream: () => HostPort },
  signal: AbortSignal,
): Promise<void> {
  const d = opts.delayMs;
  const accepted = performance.now();
  const cut = new AbortController();
  const linkSignal = AbortSignal.any([signal, cut.signal]);
  let upstream: Deno.TcpConn | undefined;
  const dialled = (async () => {
    await delay(d, { signal: linkSignal });
    upstream = await Deno.connect(opts.upstream());
    upstream.setNoDelay(true);
    return upstream;
  })();
  const toUpstream = new DelayQueue();
  const toClient = new DelayQueue();
  const stamp = (notBefore: number) => () => Math.max(performance.now(), notBefore) + d;
  const readers = [
    readInto(client, toUpstream, stamp(accepted + 2 * d), opts.windowBytes, linkSignal),
    dialled.then((up) =>
      readInto(up, toClient, stamp(accepted + 3 * d), opts.windowBytes, linkSignal)
    ),
  ];
  try {
    await Promise.all([
      writeFrom(toUpstream, dialled, linkSignal),
      writeFrom(toClient, Promise.resolve(client), linkSignal),
    ]);
  } catch {
    // One side broke or the proxy is closing: both sides go.
  } finally {
    cut.abort();
    closeQuietly(client);
    closeQuietly(upstream);
    await Promise.allSettled([dialled, ...readers]);
  }
}

/** Listens on 127.0.0.1 (a free port) and proxies every connection to `upstream` with delay D. */
export function startDelayProxy(options: DelayProxyOptions): DelayProxy {
  const upstream = options.upstream;
  const opts = {
    delayMs: options.delayMs,
    windowBytes: options.windowBytes ?? DEFAULT_WINDOW_BYTES,
    upstream: typeof upstream === "function" ? upstream : () => upstream,
  };
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const stop = new AbortController();
  const links = new Set<Promise<void>>();
  let accepted = 0;
  const loop = (async () => {
    try {
      for await (const conn of listener) {
        accepted++;
        conn.setNoDelay(true);
        const link = runLink(conn, opts, stop.signal).finally(() => links.delete(link));
        links.add(link);
      }
    } catch {
      // the listener was closed
    }
  })();
  const port = listener.addr.port;
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      closeQuietly(listener);
      await loop;
      stop.abort();
      await Promise.allSettled([...links]);
    })();
  return {
    port,
    addr: `127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    get open() {
      return links.size;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
