/**
 * Reading a proxy client's request head: bounded in size and, like the SOCKS5 handshake, in time.
 * Bytes the client sent after the head (a request body, an eager TLS ClientHello) are returned, so
 * they reach the tunnel first.
 */
import { deadline, DeadlineError } from "../async.ts";
import { errorMessage } from "../errors.ts";
import { findHeadEnd, parseRequestHead, type RequestHead } from "../net/http_head.ts";
import { HttpProxyError } from "./http_proxy_reply.ts";

/** Generous for cookies and tokens; Go's net/http allows 1 MiB, nginx 8 KiB per line. */
export const HTTP_PROXY_HEAD_LIMIT = 64 * 1024;
/** The same deadline as the SOCKS5 handshake's. */
export const HTTP_PROXY_HEAD_TIMEOUT_MS = 30_000;

export interface ProxyHead {
  head: RequestHead;
  /** What the client sent after the head. */
  rest: Uint8Array;
}

export interface ReadHeadOptions {
  limit?: number;
  timeoutMs?: number;
}

const CHUNK = 4096;

/**
 * Reads one request head from `conn`; null when the client closed before sending a byte. Throws
 * HttpProxyError: 408 at the deadline (the caller closes `conn`, which ends the pending read),
 * 431 above the limit, 400 for a malformed head or an EOF inside it.
 */
export async function readProxyHead(
  conn: { read(p: Uint8Array): Promise<number | null> },
  opts: ReadHeadOptions = {},
): Promise<ProxyHead | null> {
  const limit = opts.limit ?? HTTP_PROXY_HEAD_LIMIT;
  const until = performance.now() + (opts.timeoutMs ?? HTTP_PROXY_HEAD_TIMEOUT_MS);
  // Room for the whole head plus one chunk of what follows it.
  let buf = new Uint8Array(CHUNK);
  let len = 0;
  let scanned = 0;
  for (;;) {
    const found = findHeadEnd(buf, 0, len, scanned);
    if (found) {
      if (found.end > limit) break;
      return { head: parse(buf.subarray(0, found.end)), rest: buf.slice(found.next, len) };
    }
    if (len > limit) break;
    scanned = Math.max(0, len - 3);
    if (buf.length - len < CHUNK) {
      const grown = new Uint8Array(buf.length * 2);
      grown.set(buf.subarray(0, len));
      buf = grown;
    }
    let n: number | null;
    try {
      n = await deadline(conn.read(buf.subarray(len, len + CHUNK)), until - performance.now());
    } catch (err) {
      if (err instanceof DeadlineError) {
        throw new HttpProxyError(408, "head_timeout", "request head not received in time");
      }
      throw new HttpProxyError(400, "bad_request", `read request: ${errorMessage(err)}`);
    }
    if (n === null) {
      if (len === 0) return null;
      throw new HttpProxyError(400, "bad_request", "client closed the connection inside the head");
    }
    len += n;
  }
  throw new HttpProxyError(431, "head_too_large", `request head over ${limit} bytes`);
}

function parse(bytes: Uint8Array): RequestHead {
  try {
    return parseRequestHead(bytes);
  } catch (err) {
    throw new HttpProxyError(400, "bad_request", errorMessage(err));
  }
}
