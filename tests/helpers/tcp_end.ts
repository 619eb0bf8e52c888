/**
 * Reading a TCP connection to its end and telling how it ended: a clean end (FIN: read returns
 * EOF) or a reset (RST: read fails with ECONNRESET). A cut tunnel must show as the latter.
 */

export type TcpEnd = "fin" | "rst";

export interface ReadToEnd {
  data: Uint8Array;
  end: TcpEnd;
}

/** Reads until EOF or reset; other errors reject. */
export async function readToEnd(conn: Deno.Conn): Promise<ReadToEnd> {
  const parts: Uint8Array[] = [];
  let total = 0;
  let end: TcpEnd = "fin";
  const buf = new Uint8Array(64 * 1024);
  for (;;) {
    let n: number | null;
    try {
      n = await conn.read(buf);
    } catch (err) {
      if (!(err instanceof Deno.errors.ConnectionReset)) throw err;
      end = "rst";
      break;
    }
    if (n === null) break;
    parts.push(buf.slice(0, n));
    total += n;
  }
  const data = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    data.set(p, off);
    off += p.length;
  }
  return { data, end };
}

/** Only how the connection ended; the data is counted, not kept. */
export async function endOf(conn: Deno.Conn): Promise<{ bytes: number; end: TcpEnd }> {
  const buf = new Uint8Array(64 * 1024);
  let bytes = 0;
  for (;;) {
    let n: number | null;
    try {
      n = await conn.read(buf);
    } catch (err) {
      if (err instanceof Deno.errors.ConnectionReset) return { bytes, end: "rst" };
      throw err;
    }
    if (n === null) return { bytes, end: "fin" };
    bytes += n;
  }
}
