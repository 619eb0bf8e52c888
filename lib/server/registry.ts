/**
 * Listener registry: listeners per hybrid connection (keyed case-insensitively), a cap per HC, and
 * round-robin dispatch that skips listeners whose control channel is going away.
 */
import { longestNameMatch, nameKey } from "./route.ts";

export interface Dispatchable {
  /** False while the upgrade is in flight or once the control channel is closing. */
  readonly dispatchable: boolean;
}

interface Group<L> {
  readonly name: string;
  readonly members: L[];
  next: number;
}

export class ListenerRegistry<L extends Dispatchable> {
  readonly #max: number;
  readonly #groups = new Map<string, Group<L>>();

  constructor(maxPerHyco: number) {
    this.#max = maxPerHyco;
  }

  /** Adds `listener` under `name`; false when the HC already has the maximum number of listeners. */
  add(name: string, listener: L): boolean {
    const key = nameKey(name);
    let group = this.#groups.get(key);
    if (!group) {
      group = { name, members: [], next: 0 };
      this.#groups.set(key, group);
    }
    if (group.members.length >= this.#max) return false;
    group.members.push(listener);
    return true;
  }

  /** Removes `listener`; true when it was registered. */
  remove(name: string, listener: L): boolean {
    const key = nameKey(name);
    const group = this.#groups.get(key);
    if (!group) return false;
    const i = group.members.indexOf(listener);
    if (i < 0) return false;
    group.members.splice(i, 1);
    if (i < group.next) group.next--;
    if (group.members.length === 0) this.#groups.delete(key);
    return true;
  }

  /** The next dispatchable listener of `name` in round-robin order, skipping `exclude`. */
  pick(name: string, exclude: ReadonlySet<L> = new Set()): L | undefined {
    const group = this.#groups.get(nameKey(name));
    if (!group) return undefined;
    const n = group.members.length;
    for (let i = 0; i < n; i++) {
      const idx = (group.next + i) % n;
      const candidate = group.members[idx];
      if (candidate.dispatchable && !exclude.has(candidate)) {
        group.next = (idx + 1) % n;
        return candidate;
      }
    }
    return undefined;
  }

  count(name: string): number {
    return this.#groups.get(nameKey(name))?.members.length ?? 0;
  }

  /** In any-name mode: the longest HC name with listeners that `path` addresses (name[/suffix]). */
  matchListening(path: string): string | undefined {
    const names = [...this.#groups.values()].map((g) => g.name);
    return longestNameMatch(path, names);
  }

  /** Listener counts per HC name (as first registered). */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const g of this.#groups.values()) out[g.name] = g.members.length;
    return out;
  }
}
