/** Public shapes of lib/ws. lib/tunnel and lib/relay code against these, never against internals. */

/** One whole WebSocket message. Text arrives decoded; binary as bytes. */
export type WsMessage =
  | { readonly type: "text"; readonly data: string }
  | { readonly type: "binary"; readonly data: Uint8Array };

/** The peer's Close frame (1005 when it carried no code, 1006 when the socket dropped without one). */
export interface CloseInfo {
  readonly code: number;
  readonly reason: string;
}

/**
 * A message socket: what everything above lib/ws talks to.
 * - `receive()` reads frames only when called (receive backpressure); resolves `null` once the peer's
 *   Close has arrived (see `closeInfo`), rejects with `WsError` on a broken connection or protocol error.
 * - `send()` resolves when the frame has been handed to the OS socket (send backpressure). Concurrent
 *   sends are serialised; control frames (pong, ping, close) never interleave inside a data frame.
 * - `close()` sends Close and waits (up to a deadline) for the peer's Close; receiving keeps working in
 *   the meantime (the half-closed state), so `receive()` still returns the peer's last messages.
 * - When the peer's Close arrives first, nothing is answered automatically: `receive()` resolves
 *   `null`, `closeInfo` is set, `send()` still works, and the application answers with `close()`
 *   when it is done (e.g. with the peer's own code, to forward a Close transparently). An
 *   application that never calls `close()`/`closeNow()` keeps the connection open.
 * - `closeNow()` drops the TCP connection with no Close frame.
 */
export interface MessageSocket {
  receive(): Promise<WsMessage | null>;
  send(data: Uint8Array | string): Promise<void>;
  /** Sends a Ping and resolves when its Pong arrives; rejects with WsError code `ping_timeout`. */
  ping(timeoutMs: number): Promise<void>;
  close(code?: number, reason?: string): Promise<void>;
  closeNow(): void;
  /** The peer's Close once received, else null. */
  readonly closeInfo: CloseInfo | null;
  /** True once this side has sent Close (or dropped the connection). */
  readonly closeSent: boolean;
  /** Resolves once the underlying connection is fully closed and all resources released. */
  readonly closed: Promise<void>;
}
