/**
 * An allowlist the `up` supervisor can swap while the listener runs (SIGHUP): the listener checks
 * every envelope through `allows`, so the next tunnel sees the new list and open ones are untouched.
 */
import { Allowlist } from "../tunnel/allowlist.ts";

export class LiveAllowlist extends Allowlist {
  #current: Allowlist | null;

  /** `current` null: every target is permitted, as with no `--allow`. */
  constructor(current: Allowlist | null) {
    super([], []);
    this.#current = current;
    // `entries` is a plain field of Allowlist; what the listener logs must follow the swaps.
    Object.defineProperty(this, "entries", { get: () => this.#current?.entries ?? ["*"] });
  }

  get current(): Allowlist | null {
    return this.#current;
  }

  set(next: Allowlist | null): void {
    this.#current = next;
  }

  override allows(target: string): boolean {
    return this.#current === null || this.#current.allows(target);
  }
}
