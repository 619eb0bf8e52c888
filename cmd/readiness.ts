/** What `/readyz` answers for each kind of command. */
import { redactArc } from "../lib/arc/redact.ts";
import { errorMessage } from "../lib/errors.ts";
import type { Readiness } from "../lib/observe/ops_server.ts";
import type { TunnelObserver } from "../lib/tunnel/observer.ts";

/** relay-listener: ready while the control channel is connected. */
export class ListenerReadiness {
  #up = false;

  set(up: boolean): void {
    this.#up = up;
  }

  check(): Readiness {
    return this.#up ? { ready: true } : { ready: false, reason: "control channel not connected" };
  }
}

/**
 * Senders (port-forward, socks5-proxy, connect, arc): ready once the local side is up (the socket
 * is bound; stdio from the start) and while the last relay dial did not fail.
 */
export class SenderReadiness {
  #bound = false;
  #dialError: string | undefined;

  /** Feeds `relayDialEnded` into the readiness. */
  readonly observer: TunnelObserver = {
    relayDialEnded: (error) => {
      this.#dialError = error === undefined ? undefined : redactArc(errorMessage(error));
    },
  };

  /** The local socket is bound (or, for connect, stdio is there). */
  bound(): void {
    this.#bound = true;
  }

  check(): Readiness {
    if (!this.#bound) return { ready: false, reason: "local listener not bound" };
    if (this.#dialError !== undefined) {
      return { ready: false, reason: `last relay dial failed: ${this.#dialError}` };
    }
    return { ready: true };
  }
}
