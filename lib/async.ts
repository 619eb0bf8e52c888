/**
 * Timers and races that never leave a timer or listener behind (the test sanitizers check), shaped
 * like Deno's `@std/async` (which is on JSR, out of reach here).
 */
import { AztunnelError } from "./errors.ts";

/** Raised by `deadline` when the time is up. */
export class DeadlineError extends AztunnelError {
  constructor(message = "deadline exceeded") {
    super("timeout", message);
    this.name = "DeadlineError";
  }
}

export interface DelayOptions {
  signal?: AbortSignal;
}

/** Resolves after `ms`; rejects with the signal's reason as soon as it aborts. */
export function delay(ms: number, { signal }: DelayOptions = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Resolves after `ms` or as soon as `signal` aborts, whichever is first; never rejects. */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return delay(ms, { signal }).catch(() => {});
}

/** Waits for `p` unless `signal` aborts first (then rejects with its reason); `p` runs on. */
export function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) {
    // Nobody waits for `p` any more: its own rejection must not surface as unhandled.
    p.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

export interface DeadlineOptions {
  signal?: AbortSignal;
  /** The rejection at the deadline; a `DeadlineError` by default. */
  onTimeout?: () => Error;
}

/** `p`, or a rejection at `ms` (or when `signal` aborts first); the timer is always cleared. */
export function deadline<T>(p: Promise<T>, ms: number, options: DeadlineOptions = {}): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), Math.max(0, ms));
  const signals = options.signal ? [controller.signal, options.signal] : [controller.signal];
  return abortable(p, AbortSignal.any(signals)).catch((err) => {
    if (controller.signal.aborted && !options.signal?.aborted) {
      throw options.onTimeout?.() ?? new DeadlineError(`no result within ${ms} ms`);
    }
    throw err;
  }).finally(() => clearTimeout(timer));
}

/** Closes `x`, ignoring the error a second close (or a broken resource) throws. */
export function closeQuietly(x: { close(): unknown } | null | undefined): void {
  try {
    x?.close();
  } catch {
    // Already closed, or broken: either way it is gone.
  }
}
