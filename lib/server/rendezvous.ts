/**
 * Pending rendezvous: a sender waits while its listener dials the accept address back. Each id is a
 * one-shot capability: the first `claim` or `expire` wins, synchronously, so a late listener and a
 * timed-out sender can never both think they own it.
 */

export interface PendingRendezvous<T> {
  readonly id: string;
  /** Resolves with what `claim` delivered. */
  readonly outcome: Promise<T>;
}

interface Entry<T> {
  readonly resolve: (value: T) => void;
}

export class RendezvousTable<T> {
  readonly #entries = new Map<string, Entry<T>>();

  /** Registers `id` (must be fresh). */
  create(id: string): PendingRendezvous<T> {
    if (this.#entries.has(id)) throw new Error(`duplicate rendezvous id ${id}`);
    const { promise, resolve } = Promise.withResolvers<T>();
    this.#entries.set(id, { resolve });
    return { id, outcome: promise };
  }

  /** Delivers `value` to the waiting sender; false when the id is unknown, used or expired. */
  claim(id: string, value: T): boolean {
    const entry = this.#entries.get(id);
    if (!entry) return false;
    this.#entries.delete(id);
    entry.resolve(value);
    return true;
  }

  /** Withdraws `id` (timeout, shutdown); false when it was already claimed. */
  expire(id: string): boolean {
    return this.#entries.delete(id);
  }

  has(id: string): boolean {
    return this.#entries.has(id);
  }

  get size(): number {
    return this.#entries.size;
  }
}

/**
 * A fresh accept id. The sender's `sb-hc-id` (when short and URL-safe) leads, as Azure does, so logs
 * on both ends correlate; the random UUID part is what makes the address unguessable.
 */
export function newRendezvousId(senderId: string | null): string {
  const random = crypto.randomUUID();
  if (senderId && senderId.length <= 64 && /^[A-Za-z0-9._~-]+$/.test(senderId)) {
    return `${senderId}_${random}`;
  }
  return random;
}
