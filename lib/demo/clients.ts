/** The demo's own two clients for its self-check: a one-shot HTTP GET and a SOCKS5 CONNECT. */
import { writeAll } from "../net/write_all.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    const got = await conn.read(out.subarray(off));
    if (got === null) throw new Error("connection closed early");
    off += got;
  }
  return out;
}

/** A one-shot HTTP/1.1 GET with `Connection: close`; returns the body of a 200 and closes `conn`. */
export async function httpGet(conn: Deno.Conn, host: string): Promise<string> {
  try {
    await writeAll(
      conn,
      enc.encode(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`),
    );
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(16 * 1024);
    while (true) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    const text = dec.decode(new Uint8Array(chunks.flatMap((c) => [...c])));
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1];
    if (status !== "200") throw new Error(`HTTP status ${status ?? "missing"}`);
    return text.slice(text.indexOf("\r\n\r\n") + 4);
  } finally {
    conn.close();
  }
}

export interface Socks5Target {
  /** The proxy's port on `proxyHost`. */
  proxyPort: number;
  proxyHost: string;
  /** Sent as a domain name (ATYP 3): the listener resolves it. */
  host: string;
  port: number;
}

/** SOCKS5 CONNECT (no auth) by domain name; resolves with the tunnel after a success reply. */
export async function socks5Connect(t: Socks5Target): Promise<Deno.Conn> {
  const conn = await Deno.connect({ hostname: t.proxyHost, port: t.proxyPort });
  try {
    await writeAll(conn, new Uint8Array([5, 1, 0]));
    const method = await readExactly(conn, 2);
    if (method[0] !== 5 || method[1] !== 0) throw new Error("SOCKS5 proxy refused no-auth");
    const name = enc.encode(t.host);
    await writeAll(
      conn,
      new Uint8Array([5, 1, 0, 3, name.length, ...name, t.port >> 8, t.port & 0xff]),
    );
    const reply = await readExactly(conn, 10); // IPv4 bound address: the proxy listens on 127.0.0.1
    if (reply[1] !== 0) throw new Error(`SOCKS5 reply 0x${reply[1].toString(16).padStart(2, "0")}`);
    return conn;
  } catch (err) {
    conn.close();
    throw err;
  }
}
