/** SIGINT/SIGTERM as the two stop requests every long-running command honours. */

export interface ShutdownSignal {
  /** Aborted on the first SIGINT/SIGTERM: stop accepting, drain open tunnels. */
  signal: AbortSignal;
  /** Aborted on the second: cut every tunnel now instead of waiting out the drain. */
  force: AbortSignal;
  /** Removes the handlers. */
  dispose(): void;
}

/**
 * Stop requests from SIGINT/SIGTERM (SIGINT only on Windows), or from `source` in tests. Both the
 * graceful and the forced stop end the command with exit 0: the user asked it to stop, and the
 * second signal only says "do not wait" (unlike Go, where Ctrl-C is exit 1 "context canceled").
 */
export function shutdownSignal(
  source?: { subscribe(handler: () => void): () => void },
): ShutdownSignal {
  const first = new AbortController();
  const second = new AbortController();
  const handler = () => {
    if (!first.signal.aborted) first.abort(new DOMException("shutdown requested", "AbortError"));
    else second.abort(new DOMException("second shutdown request", "AbortError"));
  };
  const unsubscribe = (source ?? processSignals).subscribe(handler);
  return { signal: first.signal, force: second.signal, dispose: unsubscribe };
}

const processSignals = {
  subscribe(handler: () => void): () => void {
    const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
    for (const s of signals) Deno.addSignalListener(s, handler);
    return () => {
      for (const s of signals) Deno.removeSignalListener(s, handler);
    };
  },
};
