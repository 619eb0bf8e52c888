/**
 * The send side of one connection: frames go out one at a time, in call order, each as a single
 * frame (outgoing messages are never fragmented), so control frames never land inside a message.
 * Each frame, header and payload, is handed to the socket in one write.
 */

import { applyMask, encodeFrameHeader, frameHeaderSize } from "./frame.ts";
import { writeAll } from "../net/write_all.ts";
import type { BufferedConn } from "./io.ts";

/** Payloads up to this size use a pooled scratch buffer; bigger ones get one of their own. */
const COALESCE_MAX = 64 * 1024;
/** Payload offset in the scratch buffer: 4-byte aligned (word masking) with room for any header. */
const PAYLOAD_OFFSET = 16;
/**
 * Frames up to this payload size get a buffer of their own, sized to fit: cheaper than a pooled
 * 64 KiB one, and pings, pongs and keystrokes on many connections then leave the pool alone.
 */
const SMALL_PAYLOAD = 1024;
const SCRATCH_SIZE = PAYLOAD_OFFSET + COALESCE_MAX;
/** Free scratch buffers kept for reuse; more writers at once allocate and let the GC have them. */
const SCRATCH_POOL_MAX = 8;

/**
 * Scratch buffers shared by every connection of the process. A connection holds one only while a
 * frame is being written, so idle connections (most of them, with thousands of tunnels) hold none.
 */
const scratchPool: Uint8Array[] = [];

/** Masking keys for every client connection: each key is used synchronously, then never again. */
let maskPool = new Uint8Array(0);
let maskPos = 0;

const noop = () => {};

export class FrameWriter {
  readonly #io: BufferedConn;
  readonly #masked: boolean;
  #tail: Promise<void> = Promise.resolve();
  /** Tasks queued or running; 0 means the next one may start synchronously. */
  #queued = 0;

  /** `masked` is true on a client: RFC 6455 requires client frames to be masked. */
  constructor(io: BufferedConn, masked: boolean) {
    this.#io = io;
    this.#masked = masked;
  }

  /** Settles (never rejects) once everything queued so far has finished. */
  get idle(): Promise<void> {
    return this.#tail;
  }

  /** Runs `task` after every task queued before it; the first one starts synchronously. */
  queue(task: () => Promise<void>): Promise<void> {
    const run = () => task().finally(() => this.#queued--);
    const p = this.#queued++ === 0 ? run() : this.#tail.then(run);
    this.#tail = p.then(noop, noop);
    return p;
  }

  /**
   * Writes one whole frame now (callers serialise through `queue`); resolves once the bytes are
   * handed to the socket. The caller's payload is copied next to the header, never modified.
   */
  async writeFrame(opcode: number, payload: Uint8Array): Promise<void> {
    const length = payload.length;
    const mask = this.#masked ? nextMask() : null;
    const headerSize = frameHeaderSize(length, mask !== null);
    const start = PAYLOAD_OFFSET - headerSize;
    if (length <= COALESCE_MAX) {
      const pooled = length > SMALL_PAYLOAD;
      const scratch = pooled
        ? scratchPool.pop() ?? new Uint8Array(SCRATCH_SIZE)
        : new Uint8Array(PAYLOAD_OFFSET + length);
      encodeFrameHeader(scratch, start, opcode, true, length, mask);
      const body = scratch.subarray(PAYLOAD_OFFSET, PAYLOAD_OFFSET + length);
      body.set(payload);
      if (mask) applyMask(body, mask);
      await writeAll(this.#io.conn, scratch.subarray(start, PAYLOAD_OFFSET + length));
      // Pooled again only after a completed write; a failed one may still be referenced by the
      // cancelled op, so the GC takes it instead.
      if (pooled && scratchPool.length < SCRATCH_POOL_MAX) scratchPool.push(scratch);
    } else {
      // One buffer, one write, even at the cost of a copy: a separate header write would leave a
      // small unacknowledged segment that holds back the next one on a socket with Nagle on (a
      // server-side TlsConn has no setNoDelay).
      const frame = new Uint8Array(PAYLOAD_OFFSET + length);
      encodeFrameHeader(frame, start, opcode, true, length, mask);
      const body = frame.subarray(PAYLOAD_OFFSET);
      body.set(payload);
      if (mask) applyMask(body, mask);
      await writeAll(this.#io.conn, frame.subarray(start));
    }
  }
}

/** Masking keys come from the CSPRNG in batches: one call per 256 frames. */
function nextMask(): Uint8Array {
  if (maskPos + 4 > maskPool.length) {
    maskPool = crypto.getRandomValues(new Uint8Array(1024));
    maskPos = 0;
  }
  const mask = maskPool.subarray(maskPos, maskPos + 4);
  maskPos += 4;
  return mask;
}
