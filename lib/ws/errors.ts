import { AztunnelError } from "../errors.ts";

/** Machine codes of every WsError: callers branch on these, never on messages. */
export type WsErrorCode =
  | "handshake_timeout"
  | "connect_failed"
  | "aborted"
  | "protocol_error"
  | "ping_timeout"
  | "closed"
  | "connection_lost"
  | "message_too_big";

/** A WebSocket failure after (or instead of) a readable HTTP answer. */
export class WsError extends AztunnelError {
  declare readonly code: WsErrorCode;
  constructor(code: WsErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.name = "WsError";
  }
}

/** The server answered the upgrade with something other than 101; everything it said is kept. */
export class WsHandshakeError extends AztunnelError {
  declare readonly code: "handshake_status";
  readonly status: number;
  readonly statusText: string;
  readonly headers: Headers;
  readonly body: string;
  constructor(
    message: string,
    answer: { status: number; statusText: string; headers: Headers; body: string },
  ) {
    super("handshake_status", message);
    this.name = "WsHandshakeError";
    this.status = answer.status;
    this.statusText = answer.statusText;
    this.headers = answer.headers;
    this.body = answer.body;
  }
}
