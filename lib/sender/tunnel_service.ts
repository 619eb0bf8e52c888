/**
 * What port-forward and socks5-proxy share around their protocol: the local listener and its stop,
 * and per client the tunnel open and the bridge, tracked so that a stop (signal) closes the
 * listener, abandons clients whose tunnel is still opening, lets bridged tunnels finish for
 * `drainTimeoutMs` (or until `force`), then cancels them.
 */
import { errorMessage } from "../errors.ts";
import { acceptLoop } from "../net/accept_loop.ts";
import { type HostPort, joinHostPort } from "../net/host_port.ts";
import { listenTcp, tuneTcp } from "../net/listen.ts";
import type { Logger } from "../observe/log.ts";
import { RelayDialError } from "../relay/dial_error.ts";
import type { RelayAuthMode } from "../relay/token_from_env.ts";
import type { PoolMetrics } from "../observe/metrics.ts";
import { type ByteStream, observedBridge } from "../tunnel/bridge.ts";
import { FEATURE_HALF_CLOSE } from "../tunnel/envelope.ts";
import type { TunnelObserver } from "../tunnel/observer.ts";
import { TaskTracker } from "../tunnel/tracker.ts";
import { checkStartupToken, CredentialWatch, senderAuthAttrs } from "./credentials.ts";
import type { ClientInput } from "./early_data.ts";
import type { OpenedTunnel, SenderRelayConfig } from "./open_tunnel.ts";
import { TunnelSource, type TunnelSourceOptions } from "./tunnel_source.ts";

export interface TunnelServiceOptions {
  relay: SenderRelayConfig;
  /** How the relay credentials authenticate, for the listening line; default the tokens' kind. */
  relayAuth?: RelayAuthMode;
  bind: HostPort;
  keepAlive: boolean;
  drainTimeoutMs: number;
  signal: AbortSignal;
  /** A second stop request: open tunnels are cut without waiting for the drain. */
  force?: AbortSignal;
  logger: Logger;
  observer?: TunnelObserver;
  /** Called with the bound address once listening (tests use it instead of parsing logs). */
  onListening?(addr: Deno.NetAddr): void;
  /** Features to offer; default all. */
  features?: readonly string[];
  /** See BridgeOptions.halfCloseLingerMs. */
  halfCloseLingerMs?: number;
  /** Warm legs (`--pool-min`, `--pool-max`); absent or max 0: none, today's behaviour. */
  pool?: TunnelSourceOptions["pool"];
  poolMetrics?: PoolMetrics;
}

/** One sender mode as `serveTunnels` runs it. */
export interface TunnelMode {
  /** The INFO line once bound (`port-forward listening`), with `bind` and then `attrs`. */
  listening: string;
  attrs?: Record<string, unknown>;
  /** The WARN line of a client whose relay dial or bridge failed (`forward failed`). */
  failure: string;
  /** Serves one accepted connection; must close it. */
  handle(conn: Deno.TcpConn, scope: ConnectionScope): Promise<void>;
}

/** What a connection handler gets: the service's stop, and its clients' tunnels. */
export interface ConnectionScope {
  /** Aborts as soon as the stop begins: for a handshake before the tunnel opens. */
  opening: AbortSignal;
  /**
   * Opens the tunnel to `target` (a warm leg or the relay dial, and the envelope exchange), given
   * up when the stop begins; `earlyData` as in TunnelSource.open. Throws as `openEnvelopeTunnel`;
   * a relay dial failure (a stop is none) is logged as the mode's failure, the others were logged
   * by the exchange.
   */
  open(target: string, earlyData?: ClientInput): Promise<OpenedTunnel>;
  /** Bridges `local` and `tunnel` as a drain waits for; a failed bridge is logged as the failure. */
  bridge(local: ByteStream, tunnel: OpenedTunnel): Promise<void>;
}

/**
 * Gets an Entra token (see checkStartupToken), listens on `opts.bind`, logs `mode.listening` with
 * the bound address and the auth, and hands every connection to `mode.handle` until `signal`
 * aborts, then drains. Throws when the token or the bind fails; a stop before listening returns.
 */
export async function serveTunnels(opts: TunnelServiceOptions, mode: TunnelMode): Promise<void> {
  try {
    await checkStartupToken(opts.relay, opts.signal);
  } catch (err) {
    if (opts.signal.aborted) return;
    throw err;
  }
  const listener = listenTcp(opts.bind);
  const bind = joinHostPort(listener.addr.hostname, listener.addr.port);
  opts.logger.info(mode.listening, {
    bind,
    ...mode.attrs,
    ...senderAuthAttrs(opts.relay, opts.relayAuth),
  });
  opts.onListening?.(listener.addr);

  const tracker = new TaskTracker(opts.signal);
  const source = new TunnelSource({ ...opts, metrics: opts.poolMetrics });
  const credentials = new CredentialWatch(opts.relay, opts.logger);
  const scope: ConnectionScope = {
    opening: tracker.stopSignal,
    async open(target, earlyData) {
      try {
        const tunnel = await source.open(target, { signal: tracker.stopSignal, earlyData });
        credentials.accepted();
        return tunnel;
      } catch (err) {
        if (!(err instanceof RelayDialError)) {
          // The relay took the credentials; the listener or the exchange failed.
          credentials.accepted();
        } else if (err.code !== "aborted") {
          credentials.failed(err);
          opts.logger.warn(mode.failure, { error: errorMessage(err) });
        }
        throw err;
      }
    },
    async bridge(local, tunnel) {
      const leave = tracker.enterBridge();
      try {
        const result = await observedBridge("sender", tunnel.target, local, tunnel.socket, {
          halfClose: tunnel.features.includes(FEATURE_HALF_CLOSE),
          signal: tracker.cancelSignal,
          halfCloseLingerMs: opts.halfCloseLingerMs,
          logger: tunnel.logger,
          observer: withEarlyBytes(opts.observer, tunnel.earlyBytes),
        });
        if (result.error) tunnel.logger.warn(mode.failure, { error: errorMessage(result.error) });
      } finally {
        leave();
      }
    },
  };
  try {
    await acceptLoop(listener, (conn) => {
      tuneTcp(conn, opts.keepAlive);
      tracker.track(mode.handle(conn, scope));
    }, {
      signal: opts.signal,
      onError: (err) => opts.logger.warn("accept failed", { error: errorMessage(err) }),
    });
  } finally {
    // Idle warm legs carry nothing: they go when the stop begins, not after the drain.
    const pooled = source.close();
    await tracker.drain(opts.drainTimeoutMs, { logger: opts.logger, force: opts.force });
    await pooled;
  }
}

/** The observer, with the early bytes (sent before the bridge began) in the bridge's to-relay count. */
function withEarlyBytes(
  observer: TunnelObserver | undefined,
  earlyBytes: number | undefined,
): TunnelObserver | undefined {
  if (!observer?.connectionEnded || !earlyBytes) return observer;
  const ended = observer.connectionEnded.bind(observer);
  return {
    ...observer,
    connectionEnded: (role, target, result, ms) =>
      ended(role, target, { ...result, tcpToWs: result.tcpToWs + earlyBytes }, ms),
  };
}
