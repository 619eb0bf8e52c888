/**
 * What a sender says while a client waits: one WARN once a wait has lasted `WAIT_NOTICE_MS`, so a
 * relay dial that keeps retrying or a listener still dialling a slow target is visible under
 * `--log-level warn` (ssh's ProxyCommand), and a short wait says nothing.
 */
import { describeDialFailure } from "../relay/dial_error.ts";

/** How long a wait lasts before it is reported. */
export const WAIT_NOTICE_MS = 5000;

/** `work`'s outcome; `onSlow` runs once if it is still pending after `afterMs`. */
export async function noticeIfSlow<T>(
  work: Promise<T>,
  afterMs: number,
  onSlow: () => void,
): Promise<T> {
  const timer = setTimeout(onSlow, afterMs);
  try {
    return await work;
  } finally {
    clearTimeout(timer);
  }
}

/** `still waiting for the relay (attempt 3, last: HTTP 404 …)`: `failed` attempts so far. */
export function relayWaitMessage(failed: number, last?: unknown): string {
  const lastText = failed > 0 && last !== undefined ? `, last: ${describeDialFailure(last)}` : "";
  return `still waiting for the relay (attempt ${failed + 1}${lastText})`;
}

/** The listener has the envelope and has not answered: it is still dialling `target`. */
export function listenerWaitMessage(target: string): string {
  return `still waiting for the listener to connect to ${target}`;
}
