/**
 * The one accept loop: hands every connection to its handler until stopped, and survives failed
 * accepts (EMFILE and the like) with Go's http.Server back-off instead of spinning or giving up.
 */
import { closeQuietly, pause } from "../async.ts";

/** The first wait after a failed accept; it doubles up to ACCEPT_RETRY_MAX_MS, a success resets it. */
export const ACCEPT_RETRY_MIN_MS = 5;
export const ACCEPT_RETRY_MAX_MS = 1_000;

export interface AcceptLoopOptions {
  /** Closes the listener and ends the loop. */
  signal: AbortSignal;
  /** Told of a failed accept before the loop waits `retryMs` and tries again. */
  onError?(err: unknown, retryMs: number): void;
}

/**
 * Hands every accepted connection to `onConn` until `signal` aborts or the listener is closed; a
 * connection accepted as the stop begins is closed instead. The listener is closed on return.
 */
export async function acceptLoop<C extends Deno.Conn>(
  listener: Deno.Listener<C>,
  onConn: (conn: C) => void,
  { signal, onError }: AcceptLoopOptions,
): Promise<void> {
  const stop = () => closeQuietly(listener);
  if (signal.aborted) stop();
  else signal.addEventListener("abort", stop, { once: true });
  let retryMs = 0;
  try {
    while (!signal.aborted) {
      let conn: C;
      try {
        conn = await listener.accept();
        retryMs = 0;
      } catch (err) {
        if (signal.aborted || err instanceof Deno.errors.BadResource) break;
        retryMs = Math.min(retryMs ? retryMs * 2 : ACCEPT_RETRY_MIN_MS, ACCEPT_RETRY_MAX_MS);
        onError?.(err, retryMs);
        await pause(retryMs, signal);
        continue;
      }
      if (signal.aborted) {
        closeQuietly(conn);
        break;
      }
      onConn(conn);
    }
  } finally {
    signal.removeEventListener("abort", stop);
    stop();
  }
}
