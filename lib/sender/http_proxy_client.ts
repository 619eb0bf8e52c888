/**
 * A proxy client's socket as the bridge sees it: first the bytes the proxy already has for the
 * tunnel (what followed a CONNECT head, or the rewritten request head), then the socket. For a
 * forwarded request only that request's body follows its head, framed by its Content-Length or
 * chunked coding: the proxy checked and rewrote one head, so whatever the client sends after the
 * body (a pipelined request, with its Proxy-Authorization and absolute URI) must never reach the
 * target raw. The client's side of a forward then ends when the response has ended (the target's
 * EOF reached the client): one request per tunnel, so the tunnel ends with the response even when
 * the client would keep its connection open for another.
 */
import type { ByteStream } from "../tunnel/bridge.ts";
import { HttpProxyError } from "./http_proxy_reply.ts";
import { concatBytes } from "../bytes.ts";

/** How a forwarded request's body ends (RFC 9112 §6.3): after `length` bytes, or the last chunk. */
export type BodyFraming = { kind: "length"; length: number } | { kind: "chunked" };

/**
 * The request body's framing from its fields; throws HttpProxyError 400 for what a proxy and the
 * target could read differently (RFC 9112 §6.1, §6.3: request smuggling): Transfer-Encoding with
 * Content-Length, a Content-Length list or non-number (duplicates arrive joined by ", "), or a
 * coding other than a lone `chunked`, whose end this proxy could not find.
 */
export function bodyFraming(headers: Headers): BodyFraming {
  const te = headers.get("transfer-encoding");
  const cl = headers.get("content-length");
  if (te !== null) {
    if (cl !== null) throw badBody("both Transfer-Encoding and Content-Length");
    if (te.trim().toLowerCase() !== "chunked") {
      throw badBody(`unsupported Transfer-Encoding: ${te}`);
    }
    return { kind: "chunked" };
  }
  if (cl === null) return { kind: "length", length: 0 };
  if (!/^[0-9]{1,15}$/.test(cl)) throw badBody(`invalid Content-Length: ${cl}`);
  return { kind: "length", length: Number(cl) };
}

function badBody(message: string): HttpProxyError {
  return new HttpProxyError(400, "bad_request", message);
}

/**
 * Finds where one body ends in the bytes that follow its head, passing them on unchanged. Chunked
 * coding is followed byte by byte (size line, data, CRLF, ..., `0` line, trailers, empty line), so
 * nothing is buffered and no line is too long to track.
 */
export class BodyFramer {
  #remaining = 0;
  #state: ChunkState | "length";
  #sizeDigits = 0;

  constructor(framing: BodyFraming) {
    if (framing.kind === "length") {
      this.#state = "length";
      this.#remaining = framing.length;
    } else {
      this.#state = "size";
    }
  }

  get done(): boolean {
    return this.#state === "length" ? this.#remaining === 0 : this.#state === "done";
  }

  /** How many leading bytes of `bytes` belong to the body; throws on malformed chunked coding. */
  take(bytes: Uint8Array): number {
    if (this.#state === "length") {
      const n = Math.min(bytes.length, this.#remaining);
      this.#remaining -= n;
      return n;
    }
    let i = 0;
    while (i < bytes.length && this.#state !== "done") {
      if (this.#state === "data") {
        const n = Math.min(bytes.length - i, this.#remaining);
        this.#remaining -= n;
        i += n;
        if (this.#remaining === 0) this.#state = "data_cr";
        continue;
      }
      this.#step(bytes[i++]);
    }
    return i;
  }

  #step(b: number): void {
    switch (this.#state) {
      case "size": {
        const digit = hexValue(b);
        if (digit >= 0) {
          // 13 hex digits stay below 2^53: no chunk this large is real, and the sum stays exact.
          if (++this.#sizeDigits > 13) throw malformed("chunk size too large");
          this.#remaining = this.#remaining * 16 + digit;
          return;
        }
        if (this.#sizeDigits === 0) throw malformed("chunk size missing");
        if (b === CR) this.#state = "size_lf";
        else if (b === 0x3b || b === 0x20 || b === 0x09) this.#state = "ext"; // ; SP HTAB
        else throw malformed("invalid chunk size");
        return;
      }
      case "ext":
        if (b === CR) this.#state = "size_lf";
        else if (b === LF) throw malformed("bare LF in chunk size line");
        return;
      case "size_lf":
        expect(b, LF);
        this.#sizeDigits = 0;
        this.#state = this.#remaining === 0 ? "trailer_start" : "data";
        return;
      case "data_cr":
        expect(b, CR);
        this.#state = "data_lf";
        return;
      case "data_lf":
        expect(b, LF);
        this.#state = "size";
        return;
      case "trailer_start":
        this.#state = b === CR ? "end_lf" : "trailer";
        if (b === LF) throw malformed("bare LF in trailer section");
        return;
      case "trailer":
        if (b === CR) this.#state = "trailer_lf";
        else if (b === LF) throw malformed("bare LF in trailer section");
        return;
      case "trailer_lf":
        expect(b, LF);
        this.#state = "trailer_start";
        return;
      case "end_lf":
        expect(b, LF);
        this.#state = "done";
        return;
    }
  }
}

type ChunkState =
  | "size"
  | "ext"
  | "size_lf"
  | "data"
  | "data_cr"
  | "data_lf"
  | "trailer_start"
  | "trailer"
  | "trailer_lf"
  | "end_lf"
  | "done";

const CR = 0x0d;
const LF = 0x0a;

function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x41 && b <= 0x46) return b - 0x41 + 10;
  if (b >= 0x61 && b <= 0x66) return b - 0x61 + 10;
  return -1;
}

function expect(b: number, want: number): void {
  if (b !== want) throw malformed(want === CR ? "expected CR" : "expected LF");
}

function malformed(message: string): HttpProxyError {
  return new HttpProxyError(400, "bad_request", `malformed chunked body: ${message}`);
}

/** A forwarded request's body: its framing, and what the client sent right after the head. */
export interface ForwardBody {
  framing: BodyFraming;
  /** Bytes read with the head; only the body's share of them is passed on. */
  buffered: Uint8Array;
}

export class ProxyClientStream implements ByteStream {
  readonly #conn: ByteStream;
  #prefix: Uint8Array;
  readonly #endWithResponse: boolean;
  readonly #body: BodyFramer | null;
  /** Read with the head, not yet through the framer (which throws, so only inside a read). */
  #buffered: Uint8Array;
  readonly #responseEnded = Promise.withResolvers<null>();
  #ended = false;

  constructor(
    conn: ByteStream,
    prefix: Uint8Array,
    opts: { endWithResponse: boolean; body?: ForwardBody },
  ) {
    this.#conn = conn;
    this.#prefix = prefix;
    this.#endWithResponse = opts.endWithResponse;
    this.#body = opts.body ? new BodyFramer(opts.body.framing) : null;
    this.#buffered = opts.body?.buffered ?? new Uint8Array(0);
  }

  async read(p: Uint8Array): Promise<number | null> {
    if (this.#body && this.#buffered.length > 0) {
      const own = this.#buffered.subarray(0, this.#body.take(this.#buffered));
      this.#buffered = new Uint8Array(0);
      this.#prefix = concatBytes([this.#prefix, own]);
    }
    if (this.#prefix.length > 0) {
      const n = Math.min(p.length, this.#prefix.length);
      p.set(this.#prefix.subarray(0, n));
      this.#prefix = this.#prefix.subarray(n);
      return n;
    }
    if (this.#ended) return null;
    if (!this.#endWithResponse) return await this.#conn.read(p);
    // The body is complete: the client is not read again, so nothing it sends next is passed on;
    // the read waits for the response's end.
    if (this.#body?.done) return await this.#responseEnded.promise;
    // The read left pending at the end settles when the bridge closes the socket.
    const n = await Promise.race([this.#conn.read(p), this.#responseEnded.promise]);
    if (n === null || !this.#body) return n;
    // A read may carry the body's end and the start of a pipelined request: only the body goes.
    const own = this.#body.take(p.subarray(0, n));
    if (own > 0) return own;
    return await this.#responseEnded.promise;
  }

  write(p: Uint8Array): Promise<number> {
    return this.#conn.write(p);
  }

  async closeWrite(): Promise<void> {
    await this.#conn.closeWrite();
    if (this.#endWithResponse) {
      this.#ended = true;
      this.#responseEnded.resolve(null);
    }
  }

  close(): void {
    this.#conn.close();
  }
}
