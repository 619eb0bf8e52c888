/**
 * A Deno.Conn with one bounded, reused read buffer. The same buffer carries the HTTP head and then
 * the frames, so bytes that arrive in the same read as the head are never lost. Never uses
 * conn.readable/conn.writable: they close the whole socket at EOF and break half-close.
 *
 * The buffer starts small and grows while reads keep filling it (see ReadSizer): an idle connection
 * always has a read pending, and that read's buffer is most of what it costs.
 */
import { AztunnelError } from "../errors.ts";
import { findHeadEnd } from "../net/http_head.ts";
import { ReadSizer } from "../net/read_sizer.ts";

/** Initial read buffer: an HTTP head or a burst of small frames. */
export const READ_BUFFER_INITIAL = 8 * 1024;
/** Largest read buffer: big enough for a 64 KiB message plus its header in one read. */
export const READ_BUFFER_SIZE = 64 * 1024 + 64;

/** Reads of at least this many bytes go straight into the destination, skipping the buffer copy. */
const DIRECT_READ_MIN = 16 * 1024;

export interface BufferSizes {
  /** Default READ_BUFFER_INITIAL (capped at maxSize). */
  initialSize?: number;
  /** Default READ_BUFFER_SIZE. */
  maxSize?: number;
}

/** An HTTP head past its limit; a server answers 431. */
export class HeadTooLargeError extends AztunnelError {
  declare readonly code: "head_too_large";
  constructor(limit: number) {
    super("head_too_large", `HTTP head larger than ${limit} bytes`);
    this.name = "HeadTooLargeError";
  }
}

/** The peer closed inside a head or a frame, or before its Close frame. */
export class UnexpectedEofError extends AztunnelError {
  declare readonly code: "unexpected_eof";
  constructor(what: string) {
    super("unexpected_eof", `connection closed ${what}`);
    this.name = "UnexpectedEofError";
  }
}

export class BufferedConn {
  readonly conn: Deno.Conn;
  #buf: Uint8Array;
  readonly #sizer: ReadSizer;
  /** Unconsumed bytes are buf[start..end). */
  start = 0;
  end = 0;

  constructor(conn: Deno.Conn, sizes: BufferSizes = {}) {
    this.conn = conn;
    const max = sizes.maxSize ?? READ_BUFFER_SIZE;
    this.#sizer = new ReadSizer(Math.min(sizes.initialSize ?? READ_BUFFER_INITIAL, max), max);
    this.#buf = new Uint8Array(this.#sizer.size);
  }

  /** The current buffer; `fill()` may replace it (with the unconsumed bytes moved to its start). */
  get buf(): Uint8Array {
    return this.#buf;
  }

  get buffered(): number {
    return this.end - this.start;
  }

  /** Reads more bytes into the buffer (resizing or compacting first as needed). False at EOF. */
  async fill(): Promise<boolean> {
    this.#makeRoom();
    const room = this.#buf.length - this.end;
    const n = await this.conn.read(this.#buf.subarray(this.end));
    if (n === null) return false;
    this.end += n;
    this.#sizer.record(n, room);
    return true;
  }

  /** Moves the unconsumed bytes to the start of a buffer of the size the sizer asks for. */
  #makeRoom(): void {
    const buffered = this.end - this.start;
    const want = this.#sizer.size;
    if (want !== this.#buf.length && buffered < want) {
      const next = new Uint8Array(want);
      next.set(this.#buf.subarray(this.start, this.end));
      this.#buf = next;
    } else if (this.start > 0) {
      // Only a partial frame header or HTTP head is left here, so the copy is small.
      this.#buf.copyWithin(0, this.start, this.end);
    } else if (buffered === this.#buf.length) {
      throw new Error("read buffer full");
    }
    this.start = 0;
    this.end = buffered;
  }

  /** Fills `dst` completely: buffered bytes first, then large remainders read straight into it. */
  async readInto(dst: Uint8Array): Promise<void> {
    let off = Math.min(this.buffered, dst.length);
    if (off > 0) {
      dst.set(this.buf.subarray(this.start, this.start + off));
      this.start += off;
    }
    while (off < dst.length) {
      const missing = dst.length - off;
      if (missing >= DIRECT_READ_MIN) {
        const n = await this.conn.read(dst.subarray(off));
        if (n === null) throw new UnexpectedEofError("inside a frame");
        off += n;
      } else {
        if (!(await this.fill())) throw new UnexpectedEofError("inside a frame");
        const take = Math.min(this.buffered, missing);
        dst.set(this.buf.subarray(this.start, this.start + take), off);
        this.start += take;
        off += take;
      }
    }
  }

  /**
   * Reads an HTTP head up to and including the empty line; returns it without the final line breaks
   * (see lib/net/http_head.ts). Null when the peer closed before sending a byte. Bytes after the
   * head stay buffered.
   */
  async readHead(limit: number): Promise<Uint8Array | null> {
    let scanned = this.start;
    for (;;) {
      const found = findHeadEnd(this.buf, this.start, this.end, scanned);
      if (found) {
        if (found.end - this.start > limit) throw new HeadTooLargeError(limit);
        const head = this.buf.slice(this.start, found.end);
        this.start = found.next;
        return head;
      }
      if (this.buffered > limit) throw new HeadTooLargeError(limit);
      scanned = Math.max(this.start, this.end - 3);
      const before = this.start;
      if (!(await this.fill())) {
        if (this.buffered === 0) return null;
        throw new UnexpectedEofError("inside the HTTP head");
      }
      scanned -= before - this.start;
    }
  }
}
