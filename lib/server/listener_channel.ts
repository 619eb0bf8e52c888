/**
 * One listener's control channel on the relay: carries `accept` messages to the listener, takes
 * `renewToken` from it, and closes with 1008 when its token lapses (after a grace) or a renewal
 * fails validation. It pings the listener and drops it when no Pong comes back in time, and it
 * stops taking dispatches while its writes do not drain (a stopped or wedged listener).
 */
import { pause } from "../async.ts";
import { errorCode } from "../errors.ts";
import type { Logger } from "../observe/log.ts";
import type { MessageSocket } from "../ws/types.ts";
import type { AuthOutcome } from "./auth.ts";
import type { Dispatchable } from "./registry.ts";

/** What ended a control channel, for the `listener unregistered` line. */
export type ControlEnd =
  | "client_close"
  | "connection_lost"
  | "token_expired"
  | "renew_failed"
  | "recycled"
  | "ping_timeout"
  | "shutdown";

/** A write pending longer than this without progress means the listener is not reading. */
export const STALL_MS = 1_000;

export interface ListenerChannelInit {
  readonly id: string;
  readonly hyco: string;
  /** Decoded path the listener connected to (for renewToken audience checks). */
  readonly path: string;
  /** `host[:port]` the listener reached us by; accept addresses point there unless a public URL is set. */
  readonly host: string;
  readonly expiresAt: number;
  readonly graceMs: number;
  readonly logger: Logger;
  /** Re-validates a renewToken token for Listen on `path`. */
  readonly authorize: (token: string) => Promise<AuthOutcome>;
  /** Time between Pings (Azure's clients ping every 30 s). */
  readonly pingIntervalMs: number;
  /** How long a Pong may take before the channel is dropped. */
  readonly pongTimeoutMs: number;
}

export class ListenerChannel implements Dispatchable {
  readonly id: string;
  readonly hyco: string;
  readonly path: string;
  readonly host: string;
  readonly #init: ListenerChannelInit;
  #conn: MessageSocket | null = null;
  #expiresAt: number;
  /** Sends handed to the socket and not yet written out. */
  #inFlight = 0;
  /** performance.now() of the last write progress while sends were in flight. */
  #busySince = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #ending: ControlEnd | null = null;
  #done: Promise<void> = Promise.resolve();

  constructor(init: ListenerChannelInit) {
    this.#init = init;
    this.id = init.id;
    this.hyco = init.hyco;
    this.path = init.path;
    this.host = init.host;
    this.#expiresAt = init.expiresAt;
  }

  get dispatchable(): boolean {
    const c = this.#conn;
    return c !== null && this.#ending === null && !c.closeSent && c.closeInfo === null &&
      this.draining;
  }

  /** False while a write has made no progress for STALL_MS: the listener is not reading. */
  get draining(): boolean {
    return this.#inFlight === 0 || performance.now() - this.#busySince < STALL_MS;
  }

  /** Sends one control message (JSON text). */
  async send(text: string): Promise<void> {
    if (!this.#conn) throw new Error("control channel not open");
    if (this.#inFlight++ === 0) this.#busySince = performance.now();
    try {
      await this.#conn.send(text);
    } finally {
      this.#inFlight--;
      this.#busySince = performance.now();
    }
  }

  /** Closes with `code` (shutdown, expiry); the read loop then finishes. */
  end(why: ControlEnd, code: number, reason: string): void {
    if (this.#ending !== null || !this.#conn) return;
    this.#ending = why;
    clearTimeout(this.#timer);
    this.#conn.close(code, reason).catch(() => this.#conn?.closeNow());
  }

  /** Resolves once the channel started by `start` has ended and `onEnd` has run. */
  get done(): Promise<void> {
    return this.#done;
  }

  /** Serves the channel in the background; `onEnd` runs once it has closed. */
  start(conn: MessageSocket, onEnd: (why: ControlEnd) => void): void {
    this.#done = this.#run(conn).then(onEnd);
  }

  async #run(conn: MessageSocket): Promise<ControlEnd> {
    this.#conn = conn;
    this.#arm();
    const stopPings = new AbortController();
    const pings = this.#pingLoop(conn, stopPings.signal);
    try {
      for (;;) {
        let msg;
        try {
          msg = await conn.receive();
        } catch {
          this.#ending ??= "connection_lost";
          break;
        }
        if (msg === null) {
          this.#ending ??= "client_close";
          break;
        }
        if (msg.type === "text") await this.#onText(msg.data);
      }
    } finally {
      clearTimeout(this.#timer);
      stopPings.abort();
      // Answers the listener's Close (or completes ours); drops a dead socket.
      await conn.close(1000).catch(() => conn.closeNow());
      await conn.closed;
      await pings;
    }
    return this.#ending;
  }

  /** Pings until stopped; a missing Pong drops the socket (a Close could not get through either). */
  async #pingLoop(conn: MessageSocket, signal: AbortSignal): Promise<void> {
    for (;;) {
      await pause(this.#init.pingIntervalMs, signal);
      if (signal.aborted || this.#ending !== null) return;
      try {
        await conn.ping(this.#init.pongTimeoutMs);
      } catch (err) {
        if (signal.aborted || this.#ending !== null) return;
        if (errorCode(err) !== "ping_timeout") return;
        this.#init.logger.info("listener did not answer a ping", {
          timeout_ms: this.#init.pongTimeoutMs,
        });
        this.#ending = "ping_timeout";
        clearTimeout(this.#timer);
        conn.closeNow();
        return;
      }
    }
  }

  async #onText(text: string): Promise<void> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      this.#init.logger.debug("invalid control message ignored");
      return;
    }
    const renew = (parsed as { renewToken?: { token?: unknown } } | null)?.renewToken;
    if (renew === undefined) {
      // Unknown commands are ignored, as clients ignore unknown service messages.
      this.#init.logger.debug("unknown control message ignored");
      return;
    }
    const token = typeof renew?.token === "string" ? renew.token : "";
    const res = await this.#init.authorize(token);
    if (!res.ok) {
      this.#init.logger.warn("token renewal refused", { status: res.status, reason: res.reason });
      this.end("renew_failed", 1008, "authorization policy violated: token renewal failed");
      return;
    }
    if (this.#ending !== null) return;
    this.#expiresAt = res.expiresAt;
    this.#arm();
    this.#init.logger.debug("token renewed", {
      expires_in_seconds: Math.round((res.expiresAt - Date.now()) / 1000),
    });
  }

  #arm(): void {
    clearTimeout(this.#timer);
    const wait = this.#expiresAt + this.#init.graceMs - Date.now();
    // setTimeout overflows above 2^31-1 ms, so far-off deadlines are reached in steps.
    this.#timer = setTimeout(() => {
      if (this.#expiresAt + this.#init.graceMs > Date.now()) return this.#arm();
      this.#init.logger.info("listener token expired");
      this.end("token_expired", 1008, "authorization policy violated: token expired");
    }, Math.min(Math.max(0, wait), 2 ** 31 - 1));
  }
}
