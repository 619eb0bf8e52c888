/** The body of a refused upgrade, kept for WsHandshakeError: what the server said and why. */

import { closeQuietly } from "../async.ts";
import { hasToken, type ResponseHead } from "../net/http_head.ts";
import type { BufferedConn } from "./io.ts";

/** A refused upgrade's body is kept for the error, up to this many bytes. */
const MAX_ERROR_BODY = 64 * 1024;
/** A refusal whose body never ends (no length, connection kept open) is cut after this long. */
const ERROR_BODY_TIMEOUT_MS = 2_000;

/**
 * The body of a refused upgrade (Content-Length, chunked, or until EOF), capped in size and time;
 * whatever arrived is kept when the socket fails or the time is up.
 */
export async function readErrorBody(io: BufferedConn, res: ResponseHead): Promise<string> {
  const timer = setTimeout(() => closeQuietly(io.conn), ERROR_BODY_TIMEOUT_MS);
  const chunks: Uint8Array[] = [];
  try {
    await collectBody(io, res, chunks);
  } catch {
    // Keep the part we have: the status is what matters.
  } finally {
    clearTimeout(timer);
  }
  const size = chunks.reduce((n, c) => n + c.length, 0);
  const body = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    body.set(c, off);
    off += c.length;
  }
  return new TextDecoder().decode(body);
}

async function collectBody(io: BufferedConn, res: ResponseHead, chunks: Uint8Array[]) {
  const decoder = new TextDecoder();
  let total = 0;
  const take = (n: number) => {
    const keep = Math.min(n, MAX_ERROR_BODY - total);
    if (keep > 0) chunks.push(io.buf.slice(io.start, io.start + keep));
    total += keep;
    io.start += n;
  };
  const readN = async (n: number) => {
    while (n > 0) {
      if (io.buffered === 0 && !(await io.fill())) return false;
      const k = Math.min(n, io.buffered);
      take(k);
      n -= k;
    }
    return true;
  };
  const readLine = async (): Promise<string | null> => {
    for (;;) {
      const i = io.buf.subarray(io.start, io.end).indexOf(10);
      if (i >= 0) {
        const line = decoder.decode(io.buf.subarray(io.start, io.start + i)).trim();
        io.start += i + 1;
        return line;
      }
      if (io.buffered > 1024 || !(await io.fill())) return null;
    }
  };
  if (res.status === 204 || res.status === 304) return;
  const te = res.headers.get("transfer-encoding");
  const length = res.headers.get("content-length");
  if (te !== null && hasToken(te, "chunked")) {
    while (total < MAX_ERROR_BODY) {
      const line = await readLine();
      if (line === null) break;
      const size = parseInt(line, 16);
      if (!Number.isFinite(size) || size === 0) break;
      if (!(await readN(size)) || (await readLine()) === null) break;
    }
  } else if (length !== null && /^\d+$/.test(length)) {
    await readN(Math.min(Number(length), MAX_ERROR_BODY));
  } else {
    while (total < MAX_ERROR_BODY && (io.buffered > 0 || await io.fill())) take(io.buffered);
  }
}
