/**
 * What the relay needs to know about its TCP connections that lib/ws/server.ts does not tell:
 * how many have not yet sent a whole HTTP head (capped, so a flood of silent connections cannot
 * eat the file descriptors), the header names as the client wrote them (`Headers` lowercases),
 * and when each connection last received bytes (any frame, pings included: the idle clock).
 *
 * It wraps the listener and each accepted connection; reads and close pass straight through.
 */
import { closeQuietly } from "../async.ts";
import type { Logger } from "../observe/log.ts";

/** What is known about one accepted connection, looked up by its `remoteAddr` object. */
export interface ConnInfo {
  /** Header names in the order and case the client sent them (one entry per header line). */
  readonly rawHeaderNames: readonly string[];
  /** performance.now() of the last read that returned bytes. */
  readonly lastReadAt: number;
}

export interface ConnWatchOptions {
  /** Connections allowed at once that have not finished their request head. */
  readonly maxPendingHeads: number;
  readonly logger: Logger;
}

/** Heads beyond this are refused by lib/ws (16 KiB); stop collecting a little after. */
const HEAD_CAPTURE_LIMIT = 17 * 1024;
const HEAD_END = [13, 10, 13, 10];
const latin1 = new TextDecoder("latin1");

export class ConnWatch {
  readonly #opts: ConnWatchOptions;
  readonly #info = new WeakMap<Deno.NetAddr, Watched>();
  #pendingHeads = 0;
  #refused = 0;

  constructor(opts: ConnWatchOptions) {
    this.#opts = opts;
  }

  /** Connections accepted whose request head is not complete yet. */
  get pendingHeads(): number {
    return this.#pendingHeads;
  }

  /** Connections closed at accept because too many heads were pending. */
  get refused(): number {
    return this.#refused;
  }

  /** The connection a request arrived on (by the `remoteAddr` object the request carries). */
  info(remoteAddr: Deno.NetAddr): ConnInfo | undefined {
    return this.#info.get(remoteAddr);
  }

  /** A listener whose accept() closes connections over the cap and wraps the rest. */
  wrap<L extends Deno.Listener>(listener: L): L {
    const accept = async (): Promise<Deno.Conn> => {
      for (;;) {
        const conn = await listener.accept();
        if (this.#pendingHeads < this.#opts.maxPendingHeads) return this.#wrapConn(conn);
        this.#refused++;
        // Logged once per burst: a flood must not become a log flood.
        if (this.#refused === 1 || this.#refused % 1000 === 0) {
          this.#opts.logger.warn("connection refused: too many unfinished request heads", {
            limit: this.#opts.maxPendingHeads,
            refused_total: this.#refused,
          });
        }
        closeQuietly(conn);
      }
    };
    return new Proxy(listener, {
      get(target, prop) {
        if (prop === "accept") return accept;
        const value = Reflect.get(target, prop);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  }

  #wrapConn(conn: Deno.Conn): Deno.Conn {
    const remoteAddr = { ...(conn.remoteAddr as Deno.NetAddr) };
    const w = new Watched(() => this.#pendingHeads--);
    this.#pendingHeads++;
    this.#info.set(remoteAddr, w);
    const read = async (p: Uint8Array): Promise<number | null> => {
      const n = await conn.read(p);
      if (n !== null && n > 0) w.onBytes(p.subarray(0, n));
      return n;
    };
    const close = () => {
      w.finishHead();
      conn.close();
    };
    return new Proxy(conn, {
      get(target, prop) {
        if (prop === "read") return read;
        if (prop === "close") return close;
        if (prop === "remoteAddr") return remoteAddr;
        const value = Reflect.get(target, prop);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  }
}

class Watched implements ConnInfo {
  rawHeaderNames: string[] = [];
  lastReadAt = performance.now();
  #head: Uint8Array | null = new Uint8Array(0);
  #onHeadDone: (() => void) | null;

  constructor(onHeadDone: () => void) {
    this.#onHeadDone = onHeadDone;
  }

  onBytes(bytes: Uint8Array): void {
    this.lastReadAt = performance.now();
    const head = this.#head;
    if (head === null) return;
    const room = HEAD_CAPTURE_LIMIT - head.length;
    const next = new Uint8Array(head.length + Math.min(room, bytes.length));
    next.set(head);
    next.set(bytes.subarray(0, next.length - head.length), head.length);
    // The end marker may straddle two reads: search from just before the old end.
    const end = indexOf(next, HEAD_END, Math.max(0, head.length - 3));
    if (end >= 0) {
      this.rawHeaderNames = headerNames(next.subarray(0, end));
      this.finishHead();
    } else if (next.length >= HEAD_CAPTURE_LIMIT) {
      this.finishHead();
    } else {
      this.#head = next;
    }
  }

  /** The head is complete (or will never be): the connection no longer counts against the cap. */
  finishHead(): void {
    this.#head = null;
    this.#onHeadDone?.();
    this.#onHeadDone = null;
  }
}

/** Header names of a request head (without the blank line), as written. */
export function headerNames(head: Uint8Array): string[] {
  const lines = latin1.decode(head).split("\r\n").slice(1);
  const out: string[] = [];
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) out.push(line.slice(0, colon));
  }
  return out;
}

function indexOf(hay: Uint8Array, needle: readonly number[], from: number): number {
  outer: for (let i = from; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
