/**
 * An in-memory MessageSocket pair with the semantics of lib/ws (no automatic Close reply, null at
 * the peer's Close, rejection after a drop, bounded in-flight messages for send backpressure), for
 * the bridge and listener tests; tests/unit/fake_socket_test.ts pins its behaviour.
 */
import type { CloseInfo, MessageSocket, WsMessage } from "../../lib/ws/types.ts";

type Item = WsMessage | { type: "close"; info: CloseInfo };

export class FakeSocket implements MessageSocket {
  peer!: FakeSocket;
  /** Every message this side sent, in order. */
  readonly sent: WsMessage[] = [];
  pings = 0;
  #inbox: Item[] = [];
  #wake: (() => void)[] = [];
  #closeInfo: CloseInfo | null = null;
  #closeSent = false;
  #dropped = false;
  #closing: Promise<void> | null = null;
  readonly #capacity: number;
  readonly closed: Promise<void>;
  #resolveClosed!: () => void;

  constructor(capacity: number) {
    this.#capacity = capacity;
    this.closed = new Promise((r) => this.#resolveClosed = r);
  }

  get closeInfo(): CloseInfo | null {
    return this.#closeInfo;
  }
  get closeSent(): boolean {
    return this.#closeSent;
  }
  get dropped(): boolean {
    return this.#dropped;
  }

  #notify(): void {
    for (const w of this.#wake.splice(0)) w();
  }
  #changed(): Promise<void> {
    return new Promise((r) => this.#wake.push(r));
  }

  async receive(): Promise<WsMessage | null> {
    for (;;) {
      if (this.#closeInfo && this.#inbox.length === 0) return null;
      const item = this.#inbox.shift();
      if (item) {
        this.peer.#notify();
        if (item.type === "close") {
          this.#closeInfo = item.info;
          this.#notify();
          return null;
        }
        return item;
      }
      if (this.#dropped) {
        throw Object.assign(new Error("connection lost"), { code: "connection_lost" });
      }
      await this.#changed();
    }
  }

  async send(data: Uint8Array | string): Promise<void> {
    if (this.#closeSent || this.#dropped) throw new Error("send after close");
    const msg: WsMessage = typeof data === "string"
      ? { type: "text", data }
      : { type: "binary", data: data.slice() };
    this.sent.push(msg);
    this.peer.#push(msg);
    while (this.peer.#inbox.length > this.#capacity) {
      if (this.#dropped) throw new Error("connection lost");
      await this.#changed();
    }
  }

  #push(item: Item): void {
    this.#inbox.push(item);
    this.#notify();
  }

  ping(_timeoutMs: number): Promise<void> {
    if (this.#closeSent || this.#dropped) return Promise.reject(new Error("ping after close"));
    this.pings++;
    this.#notify();
    return Promise.resolve();
  }

  close(code = 1000, reason = ""): Promise<void> {
    if (this.#closing) return this.#closing;
    if (this.#dropped) return this.closed;
    this.#closeSent = true;
    this.peer.#push({ type: "close", info: { code, reason } });
    this.#closing = (async () => {
      // Like lib/ws: wait for the peer's Close (messages before it stay readable), then drop.
      while (!this.#closeInfo && !this.#dropped) {
        if (this.#inbox.some((i) => i.type === "close")) {
          const c = this.#inbox.find((i) => i.type === "close") as { info: CloseInfo };
          this.#closeInfo = c.info;
          break;
        }
        await this.#changed();
      }
      this.#drop(false);
    })();
    return this.#closing;
  }

  closeNow(): void {
    this.#drop(true);
  }

  #drop(abrupt: boolean): void {
    if (this.#dropped) return;
    this.#dropped = true;
    this.#closeSent = true;
    this.#resolveClosed();
    this.#notify();
    if (abrupt && !this.peer.#dropped) {
      this.peer.#dropped = true;
      this.peer.#closeSent = true;
      this.peer.#resolveClosed();
      this.peer.#notify();
    }
  }

  /** Resolves once `pred()` holds, re-checking on every state change of this side. */
  async until(pred: () => boolean): Promise<void> {
    while (!pred()) await this.#changed();
  }
}

/** Two connected fake sockets; `capacity` messages may be in flight per direction. */
export function fakeSocketPair(capacity = 64): [FakeSocket, FakeSocket] {
  const a = new FakeSocket(capacity);
  const b = new FakeSocket(capacity);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
