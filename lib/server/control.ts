/**
 * One listener's control channel on the relay: carries `accept` messages to the listener, takes
 * `renewToken` from it, and closes with 1008 when its token lapses (after a grace) or a renewal
 * fails validation.
 */
import type { Logger } from "../observe/log.ts";
import type { WebSocketConn } from "../ws/conn.ts";
import type { AuthOutcome } from "./auth.ts";
import type { Dispatchable } from "./registry.ts";

/** What ended a control channel, for the `listener unregistered` line. */
export type ControlEnd =
  | "client_close"
  | "connection_lost"
  | "token_expired"
  | "renew_failed"
  | "recycled"
  | "shutdown";

export interface ControlChannelInit {
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
}

export class ControlChannel implements Dispatchable {
  readonly id: string;
  readonly hyco: string;
  readonly path: string;
  readonly host: string;
  readonly #init: ControlChannelInit;
  #conn: WebSocketConn | null = null;
  #expiresAt: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #ending: ControlEnd | null = null;
  #done: Promise<void> = Promise.resolve();

  constructor(init: ControlChannelInit) {
    this.#init = init;
    this.id = init.id;
    this.hyco = init.hyco;
    this.path = init.path;
    this.host = init.host;
    this.#expiresAt = init.expiresAt;
  }

  get dispatchable(): boolean {
    const c = this.#conn;
    return c !== null && this.#ending === null && !c.closeSent && c.closeInfo === null;
  }

  /** Sends one control message (JSON text). */
  async send(text: string): Promise<void> {
    if (!this.#conn) throw new Error("control channel not open");
    await this.#conn.send(text);
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
  start(conn: WebSocketConn, onEnd: (why: ControlEnd) => void): void {
    this.#done = this.#run(conn).then(onEnd);
  }

  async #run(conn: WebSocketConn): Promise<ControlEnd> {
    this.#conn = conn;
    this.#arm();
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
      // Answers the listener's Close (or completes ours); drops a dead socket.
      await conn.close(1000).catch(() => conn.closeNow());
      await conn.closed;
    }
    return this.#ending;
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
