/** Comparing secrets without leaking, through timing, how long a matching prefix is. */

/** True when `a` and `b` hold the same bytes; the time taken depends on `b`'s length only. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < b.length; i++) diff |= (a[i] ?? 0) ^ b[i];
  return diff === 0;
}
