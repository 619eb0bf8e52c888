/**
 * Closing a socket right after a failure reply without losing the reply: closing with unread input
 * makes the kernel send RST, which can destroy the reply before the client reads it. So half-close,
 * discard what the client still sends (bounded in time), then close.
 */
import { closeQuietly, deadline } from "../async.ts";

export const LINGER_CLOSE_MS = 1000;

/** What lingerClose needs of a socket (Deno.Conn has it). */
export interface LingeringConn {
  read(p: Uint8Array): Promise<number | null>;
  closeWrite(): Promise<void>;
  close(): void;
}

/** Half-closes `conn`, reads until the client's EOF or `ms`, then closes it; never rejects. */
export async function lingerClose(conn: LingeringConn, ms = LINGER_CLOSE_MS): Promise<void> {
  const discard = async () => {
    await conn.closeWrite();
    const buf = new Uint8Array(4096);
    while (await conn.read(buf) !== null) { /* discard */ }
  };
  // Reset by the client, or out of time: the close below ends the read.
  await deadline(discard(), ms).catch(() => {});
  closeQuietly(conn);
}
