/**
 * `relay-sender agent`: serves the agent socket until stopped or idle. Every connection asks for one
 * tunnel; all of them share one opener, so one token cache (and, with the pool, its warm legs).
 * A stop drains like port-forward: no new connections, tunnels still opening are given up, bridged
 * ones may finish for `drainTimeoutMs`; then the socket is removed.
 */
import { errorMessage } from "../errors.ts";
import { acceptLoop } from "../net/accept_loop.ts";
import type { Logger } from "../observe/log.ts";
import type { TunnelObserver } from "../tunnel/observer.ts";
import { TaskTracker } from "../tunnel/tracker.ts";
import { IdleWatch } from "./idle.ts";
import type { TunnelOpener } from "./opener.ts";
import type { AgentPaths } from "./paths.ts";
import { serveSession } from "./session.ts";
import { claimSocket } from "./socket.ts";
import { formatDuration } from "../duration.ts";

export interface AgentOptions {
  paths: AgentPaths;
  opener: TunnelOpener;
  signal: AbortSignal;
  /** A second stop request: cut open tunnels without waiting for the drain. */
  force?: AbortSignal;
  drainTimeoutMs: number;
  /** Stop after this long without an open connection; <= 0: never. */
  idleExitMs: number;
  logger: Logger;
  observer?: TunnelObserver;
  halfCloseLingerMs?: number;
  /** See SessionOptions.requestTimeoutMs. */
  requestTimeoutMs?: number;
  /** Called once the socket accepts connections. */
  onListening?(socket: string): void;
  /** The current user (tests pass it; default Deno.uid()). */
  uid?: number;
}

/** Resolves when stopped (signal) or idle; throws when the socket cannot be claimed. */
export async function runAgent(opts: AgentOptions): Promise<void> {
  const claimed = await claimSocket(opts.paths, opts.uid ?? Deno.uid() ?? -1, opts.logger);
  using idle = new IdleWatch(opts.idleExitMs);
  const stop = AbortSignal.any([opts.signal, idle.signal]);
  const tracker = new TaskTracker(stop);
  const attrs = { socket: opts.paths.socket };
  opts.logger.info("agent listening", {
    ...attrs,
    idle_exit: opts.idleExitMs > 0 ? formatDuration(opts.idleExitMs) : "never",
  });
  opts.onListening?.(opts.paths.socket);
  try {
    await acceptLoop(claimed.listener, (conn) => {
      const leave = idle.enter();
      tracker.track(
        serveSession(conn, {
          opener: opts.opener,
          opening: tracker.stopSignal,
          cancel: tracker.cancelSignal,
          enterBridge: () => tracker.enterBridge(),
          logger: opts.logger,
          observer: opts.observer,
          halfCloseLingerMs: opts.halfCloseLingerMs,
          requestTimeoutMs: opts.requestTimeoutMs,
        }).finally(leave),
      );
    }, {
      signal: stop,
      onError: (err) => opts.logger.warn("accept failed", { error: errorMessage(err) }),
    });
    if (idle.signal.aborted && !opts.signal.aborted) {
      opts.logger.info("agent idle, exiting", { ...attrs, idle: formatDuration(opts.idleExitMs) });
    }
  } finally {
    // The socket goes first, so a new client takes the direct path instead of waiting for the drain.
    await claimed.release();
    await tracker.drain(opts.drainTimeoutMs, { logger: opts.logger, force: opts.force });
  }
}
