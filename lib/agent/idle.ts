/**
 * `--idle-exit`: the agent stops once it has had no open connection for a while (like OpenSSH's
 * ControlPersist). The clock starts at start-up and again whenever the last connection ends.
 */
import { parseDuration } from "../duration.ts";

/** `--idle-exit` and `--persist`: 0, a negative value or no value means off. */
export function offOrDuration(text: string | undefined, flag: string): number {
  return text === undefined || text.trim() === "" ? 0 : Math.max(0, parseDuration(text, flag));
}

export class IdleWatch implements Disposable {
  readonly #ms: number;
  readonly #idle = new AbortController();
  #open = 0;
  #timer?: ReturnType<typeof setTimeout>;

  /** `ms` <= 0: never idle. */
  constructor(ms: number) {
    this.#ms = ms;
    this.#arm();
  }

  /** Aborted when the idle period has passed with no connection open. */
  get signal(): AbortSignal {
    return this.#idle.signal;
  }

  /** A connection opened; call the returned function (once) when it has ended. */
  enter(): () => void {
    this.#open++;
    clearTimeout(this.#timer);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      if (--this.#open === 0) this.#arm();
    };
  }

  [Symbol.dispose](): void {
    clearTimeout(this.#timer);
  }

  #arm() {
    if (this.#ms <= 0 || this.#idle.signal.aborted) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(
      () => this.#idle.abort(new DOMException("idle", "AbortError")),
      this.#ms,
    );
  }
}
