/**
 * A proxy client's socket as the bridge sees it: first the bytes the proxy already has for the
 * tunnel (what followed a CONNECT head, or the rewritten request and its body's start), then the
 * socket. For a forwarded request the client's side also ends when the response has ended (the
 * target's EOF reached the client): one request per tunnel, so the tunnel ends with the response
 * even when the client would keep its connection open for another.
 */
import type { ByteStream } from "../tunnel/bridge.ts";

export class ProxyClientStream implements ByteStream {
  readonly #conn: ByteStream;
  #prefix: Uint8Array;
  readonly #endWithResponse: boolean;
  readonly #responseEnded = Promise.withResolvers<null>();
  #ended = false;

  constructor(conn: ByteStream, prefix: Uint8Array, opts: { endWithResponse: boolean }) {
    this.#conn = conn;
    this.#prefix = prefix;
    this.#endWithResponse = opts.endWithResponse;
  }

  read(p: Uint8Array): Promise<number | null> {
    if (this.#prefix.length > 0) {
      const n = Math.min(p.length, this.#prefix.length);
      p.set(this.#prefix.subarray(0, n));
      this.#prefix = this.#prefix.subarray(n);
      return Promise.resolve(n);
    }
    if (this.#ended) return Promise.resolve(null);
    if (!this.#endWithResponse) return this.#conn.read(p);
    // The read left pending at the end settles when the bridge closes the socket.
    return Promise.race([this.#conn.read(p), this.#responseEnded.promise]);
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
