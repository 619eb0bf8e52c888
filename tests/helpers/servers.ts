/**
 * Small in-process TCP targets for the e2e tests, the demo self-check and the benchmark: an echo
 * server (half-close aware), an HTTP server, and a deliberately slow reader. Each one tracks its
 * connections so `close()` leaves nothing open.
 */
import assert from "node:assert/strict";
import { closeQuietly, delay } from "../../lib/async.ts";
import { writeAll } from "../../lib/net/write_all.ts";
import { concatBytes } from "../../lib/bytes.ts";

export interface TcpTarget extends AsyncDisposable {
  readonly port: number;
  /** `127.0.0.1:PORT` */
  readonly addr: string;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections open right now. */
  readonly open: number;
  close(): Promise<void>;
}

type Handler = (conn: Deno.TcpConn) => Promise<void>;

/** Accept loop + bookkeeping shared by the TCP targets. */
class TcpServer implements TcpTarget {
  readonly port: number;
  readonly addr: string;
  accepted = 0;
  #listener: Deno.TcpListener;
  #conns = new Set<Deno.TcpConn>();
  #tasks = new Set<Promise<void>>();
  #loop: Promise<void>;
  #closed = false;

  constructor(handler: Handler, port = 0) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port });
    this.port = this.#listener.addr.port;
    this.addr = `127.0.0.1:${this.port}`;
    this.#loop = this.#accept(handler);
  }

  get open(): number {
    return this.#conns.size;
  }

  async #accept(handler: Handler) {
    try {
      for await (const conn of this.#listener) {
        this.accepted++;
        this.#conns.add(conn);
        const task = handler(conn)
          .catch(() => {
            // a peer that vanished mid-transfer is normal for a target
          })
          .finally(() => {
            this.#conns.delete(conn);
            closeQuietly(conn);
            this.#tasks.delete(task);
          });
        this.#tasks.add(task);
      }
    } catch {
      // listener closed
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listener.close();
    await this.#loop;
    for (const c of this.#conns) {
      closeQuietly(c);
    }
    await Promise.all([...this.#tasks]);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

export { writeAll };

/**
 * Echoes every byte back; on the client's EOF it finishes the echo and half-closes, so a client that
 * used `closeWrite()` still reads everything.
 */
export function startEchoServer(port = 0): TcpTarget {
  return new TcpServer(async (conn) => {
    const buf = new Uint8Array(64 * 1024);
    while (true) {
      const n = await conn.read(buf);
      if (n === null) break;
      await writeAll(conn, buf.subarray(0, n));
    }
    await conn.closeWrite();
  }, port);
}

/**
 * Reads the whole request until the client half-closes, then answers `reply(request)` and closes:
 * the request/response shape that needs half-close through the tunnel.
 */
export function startRequestReplyServer(reply: (request: Uint8Array) => Uint8Array): TcpTarget {
  return new TcpServer(async (conn) => {
    const request = await readAll(conn);
    await writeAll(conn, reply(request));
  });
}

/**
 * Reads at most `bytesPerSecond` (in quarter-second slices) and discards it: a target that makes
 * the tunnel's buffers fill up. `received` counts the bytes taken so far.
 */
export function startSlowReader(bytesPerSecond: number): TcpTarget & { readonly received: number } {
  const slice = Math.max(1, Math.floor(bytesPerSecond / 4));
  const counter = { received: 0 };
  const server = new TcpServer(async (conn) => {
    const buf = new Uint8Array(slice);
    while (true) {
      const started = Date.now();
      let got = 0;
      while (got < slice) {
        const n = await conn.read(buf.subarray(got));
        if (n === null) return;
        got += n;
        counter.received += n;
      }
      // Pacing, not synchronisation: this is how slow the target is meant to be.
      const rest = 250 - (Date.now() - started);
      await delay(rest);
    }
  });
  return {
    get port() {
      return server.port;
    },
    get addr() {
      return server.addr;
    },
    get accepted() {
      return server.accepted;
    },
    get open() {
      return server.open;
    },
    get received() {
      return counter.received;
    },
    close: () => server.close(),
    [Symbol.asyncDispose]: () => server.close(),
  };
}

/** A target that must never be reached: it counts (and drops) every connection it gets. */
export interface Canary extends AsyncDisposable {
  /** `127.0.0.1:PORT` */
  readonly addr: string;
  readonly accepts: number;
}

export function startCanary(): Canary {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let accepts = 0;
  const watching = (async () => {
    for await (const c of listener) {
      accepts++;
      c.close();
    }
  })();
  return {
    addr: `127.0.0.1:${listener.addr.port}`,
    get accepts() {
      return accepts;
    },
    async [Symbol.asyncDispose]() {
      listener.close();
      await watching;
    },
  };
}

/** Writes all of `data` and half-closes while reading the peer's answer until its EOF. */
export async function sendAndReadAll(conn: Deno.Conn, data: Uint8Array): Promise<Uint8Array> {
  const [, back] = await Promise.all([
    writeAll(conn, data).then(() => conn.closeWrite()),
    readAll(conn),
  ]);
  return back;
}

/** Reads until EOF. */
export async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(64 * 1024);
  while (true) {
    const n = await conn.read(buf);
    if (n === null) break;
    chunks.push(buf.slice(0, n));
  }
  return concatBytes(chunks);
}

/** Reads exactly `n` bytes or throws at EOF. */
export async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    const got = await conn.read(out.subarray(off));
    if (got === null) throw new Error(`EOF after ${off} of ${n} bytes`);
    off += got;
  }
  return out;
}

/** Sends `text` on a new connection to 127.0.0.1:`port` and returns as many bytes as came back. */
export async function echoOnce(port: number, text: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const data = new TextEncoder().encode(text);
    await writeAll(conn, data);
    return new TextDecoder().decode(await readExactly(conn, data.length));
  } finally {
    conn.close();
  }
}

/** One echo round trip on an open connection: sends `text` and asserts it comes back. */
export async function roundTrip(conn: Deno.Conn, text: string): Promise<void> {
  const data = new TextEncoder().encode(text);
  await writeAll(conn, data);
  assert.equal(new TextDecoder().decode(await readExactly(conn, data.length)), text);
}

/** Both ends of one loopback TCP connection: [the dialled end, the accepted end]. */
export async function tcpPair(): Promise<[Deno.TcpConn, Deno.TcpConn]> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    return await Promise.all([
      Deno.connect({ hostname: "127.0.0.1", port: l.addr.port }),
      l.accept(),
    ]);
  } finally {
    l.close();
  }
}

export interface HttpTarget extends AsyncDisposable {
  readonly port: number;
  readonly addr: string;
  /** Requests served so far. */
  readonly served: number;
  close(): Promise<void>;
}

/** The body every GET answers with (the path is echoed so a test can tell requests apart). */
export function httpBody(path: string): string {
  return `hello from the aztunnel target: ${path}\n`;
}

/** A plain HTTP/1.1 server (Deno.serve) on 127.0.0.1 that answers `httpBody(path)`. */
export function startHttpServer(port = 0): HttpTarget {
  let served = 0;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port, onListen: () => {} },
    (req) => {
      served++;
      return new Response(httpBody(new URL(req.url).pathname), {
        headers: { "content-type": "text/plain" },
      });
    },
  );
  const addr = server.addr as Deno.NetAddr;
  const close = async () => {
    await server.shutdown();
    await server.finished;
  };
  return {
    port: addr.port,
    addr: `127.0.0.1:${addr.port}`,
    get served() {
      return served;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Pseudo-random bytes (crypto.getRandomValues is capped at 64 KiB a call). */
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let off = 0; off < n; off += 65536) {
    crypto.getRandomValues(out.subarray(off, Math.min(n, off + 65536)));
  }
  return out;
}

export interface Socks5Result {
  /** The REP byte of the server's reply (0 = succeeded). */
  reply: number;
  /** The open tunnel when reply is 0; closed (undefined) otherwise. */
  conn?: Deno.TcpConn;
}

/**
 * A minimal SOCKS5 CONNECT client (no auth). `host` is sent as IPv4 when it is a dotted quad,
 * otherwise as a domain name.
 */
export async function socks5Connect(
  proxyPort: number,
  host: string,
  port: number,
): Promise<Socks5Result> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxyPort });
  try {
    await writeAll(conn, new Uint8Array([5, 1, 0]));
    const method = await readExactly(conn, 2);
    if (method[0] !== 5 || method[1] !== 0) throw new Error(`socks5 method reply ${method}`);
    const v4 = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(host);
    const addr = v4
      ? [1, ...v4.slice(1).map(Number)]
      : [3, host.length, ...new TextEncoder().encode(host)];
    await writeAll(conn, new Uint8Array([5, 1, 0, ...addr, port >> 8, port & 0xff]));
    const head = await readExactly(conn, 4);
    const addrLen = head[3] === 1 ? 4 : head[3] === 4 ? 16 : (await readExactly(conn, 1))[0];
    await readExactly(conn, addrLen + 2);
    if (head[1] !== 0) {
      conn.close();
      return { reply: head[1] };
    }
    return { reply: 0, conn };
  } catch (err) {
    conn.close();
    throw err;
  }
}
