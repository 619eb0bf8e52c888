/**
 * Early data (port-forward on warm legs whose listener granted `early-data`): the client's first
 * bytes go out as BINARY right after the envelope instead of after the answer, saving a round trip.
 *
 * `ClientInput` wraps the client's socket for the whole tunnel. While the answer is awaited an
 * `EarlyPump` reads the client and sends what it reads; the bytes are held until the answer, so a
 * retry on another leg (the first one died unanswered) sends them again. When the answer comes
 * the pump stops between sends: a read still pending then is not lost, the bridge's first
 * `read()` gets its result, and a client EOF (or error) seen early reaches the bridge the same way,
 * so the eof still goes out after the answer. A leg without early data (a cold retry) gets the
 * held bytes from the bridge's first reads instead.
 */
import type { ByteStream } from "../tunnel/bridge.ts";
import { MAX_DATA_MESSAGE } from "../tunnel/envelope.ts";
import type { MessageSocket } from "../ws/types.ts";
import type { EarlySender } from "./open_tunnel.ts";

/**
 * The most client bytes sent ahead of the answer (then the pump waits for it): enough for any
 * protocol's opening (ssh banner, TLS ClientHello, HTTP request), and bounded since it is held
 * for a retry.
 */
export const EARLY_DATA_LIMIT = 64 * 1024;

type ReadOutcome =
  | { readonly kind: "data"; readonly bytes: Uint8Array }
  | { readonly kind: "eof" }
  | { readonly kind: "error"; readonly error: unknown };

/** The client's socket as the bridge reads it: early reads first, then the socket itself. */
export class ClientInput implements ByteStream {
  readonly #conn: ByteStream;
  /** Read during the open and sent ahead of the answer; kept until a leg accepts the tunnel. */
  #held: Uint8Array[] = [];
  #heldBytes = 0;
  /** What the bridge reads before the socket: bytes no accepting leg has seen yet. */
  #replay: Uint8Array[] = [];
  /** A read the pump started and left when it stopped. */
  #pending: Promise<ReadOutcome> | null = null;
  /** The client's EOF or read error, seen by the pump. */
  #end: ReadOutcome | null = null;
  /**
   * The pump's one read buffer (one read is pending at a time); each read's bytes are copied out,
   * so a held chunk costs its length, not a whole buffer (1000 one-byte reads would pin 32 MB).
   */
  #readBuf: Uint8Array | null = null;
  readonly reset?: () => void;

  constructor(conn: ByteStream) {
    this.#conn = conn;
    if (conn.reset) this.reset = () => conn.reset?.();
  }

  /** Bytes held for a retry. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /** A pump for one leg: resends what is held, then reads on until the answer. */
  pump(limit = EARLY_DATA_LIMIT): EarlyPump {
    return new EarlyPump(this, limit);
  }

  /**
   * A leg accepted the tunnel after getting the first `sentEarly` held bytes (0 on a cold leg):
   * those are dropped, the bridge reads the rest first.
   */
  accepted(sentEarly: number): void {
    let skip = sentEarly;
    for (const bytes of this.#held) {
      if (skip >= bytes.length) skip -= bytes.length;
      else {
        this.#replay.push(bytes.subarray(skip));
        skip = 0;
      }
    }
    this.#held = [];
    this.#heldBytes = 0;
  }

  async read(p: Uint8Array): Promise<number | null> {
    if (this.#replay.length > 0) return this.#fromReplay(p);
    if (this.#pending) {
      const outcome = await this.#pending;
      this.#pending = null;
      if (outcome.kind === "data") {
        this.#replay.push(outcome.bytes);
        return this.#fromReplay(p);
      }
      this.#end = outcome;
    }
    if (this.#end?.kind === "eof") return null;
    if (this.#end?.kind === "error") throw this.#end.error;
    return this.#conn.read(p);
  }

  write(p: Uint8Array): Promise<number> {
    return this.#conn.write(p);
  }

  closeWrite(): Promise<void> {
    return this.#conn.closeWrite();
  }

  close(): void {
    this.#conn.close();
  }

  #fromReplay(p: Uint8Array): number {
    const head = this.#replay[0];
    const n = Math.min(p.length, head.length);
    p.set(head.subarray(0, n));
    if (n === head.length) this.#replay.shift();
    else this.#replay[0] = head.subarray(n);
    return n;
  }

  /** For the pump: what is held, to send again on a new leg. */
  get held(): readonly Uint8Array[] {
    return this.#held;
  }

  /** For the pump: true once no more early bytes may be read. */
  get exhausted(): boolean {
    return this.#end !== null;
  }

  /** For the pump: the pending read, or a new one. */
  nextRead(): Promise<ReadOutcome> {
    if (!this.#pending) {
      const buf = this.#readBuf ??= new Uint8Array(MAX_DATA_MESSAGE);
      this.#pending = this.#conn.read(buf).then(
        (n): ReadOutcome => n === null ? { kind: "eof" } : { kind: "data", bytes: buf.slice(0, n) },
        (error): ReadOutcome => ({ kind: "error", error }),
      );
    }
    return this.#pending;
  }

  /** For the pump: takes the settled pending read; data is held (it is about to be sent). */
  take(outcome: ReadOutcome): void {
    this.#pending = null;
    if (outcome.kind !== "data") {
      this.#end = outcome;
      return;
    }
    this.#held.push(outcome.bytes);
    this.#heldBytes += outcome.bytes.length;
  }
}

/** Sends one leg's early bytes; `EarlySender` for exchangeEnvelope. */
export class EarlyPump implements EarlySender {
  readonly #input: ClientInput;
  readonly #limit: number;
  #stopped = false;
  /** The send in flight, if any: `settle(true)` waits for it. */
  #sending: Promise<void> | null = null;
  /** Bytes this leg got ahead of the answer: a prefix of what the input holds. */
  sent = 0;
  /**
   * Bytes handed to the socket, sent or still in flight: a send that never resolved may still
   * have reached the listener, so a retry (which would deliver them again) looks at this.
   */
  attempted = 0;

  constructor(input: ClientInput, limit: number) {
    this.#input = input;
    this.#limit = limit;
  }

  start(socket: MessageSocket): void {
    this.#run(socket).catch(() => {
      // The leg failed: its answer fails too, and the exchange decides (retry or not).
      this.#stopped = true;
    });
  }

  async settle(ok: boolean): Promise<void> {
    this.#stopped = true;
    if (ok) await this.#sending?.catch(() => {});
  }

  async #run(socket: MessageSocket): Promise<void> {
    for (const bytes of [...this.#input.held]) {
      if (this.#stopped) return;
      await this.#send(socket, bytes);
    }
    while (!this.#stopped && !this.#input.exhausted && this.#input.heldBytes < this.#limit) {
      const outcome = await this.#input.nextRead();
      // Answered meanwhile: the read stays pending for the bridge.
      if (this.#stopped) return;
      this.#input.take(outcome);
      if (outcome.kind === "data") await this.#send(socket, outcome.bytes);
    }
  }

  async #send(socket: MessageSocket, bytes: Uint8Array): Promise<void> {
    this.attempted += bytes.length;
    this.#sending = socket.send(bytes);
    await this.#sending;
    this.#sending = null;
    this.sent += bytes.length;
  }
}
