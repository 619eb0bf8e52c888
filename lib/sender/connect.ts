/**
 * `relay-sender connect` (ssh ProxyCommand): one tunnel between stdin/stdout and the target. Ends
 * when the remote side ends or fails; stdin EOF is passed on (half-close) when the listener
 * supports it, otherwise it ends the tunnel as in Go.
 */
import { AztunnelError, errorMessage } from "../errors.ts";
import type { Logger } from "../observe/log.ts";
import { RelayDialError } from "../relay/dial_error.ts";
import type { RelayAuthMode } from "../relay/token_from_env.ts";
import { type ByteStream, observedBridge } from "../tunnel/bridge.ts";
import { FEATURE_HALF_CLOSE } from "../tunnel/envelope.ts";
import type { TunnelObserver } from "../tunnel/observer.ts";
import { CredentialWatch, senderAuthAttrs } from "./credentials.ts";
import { openEnvelopeTunnel, type SenderRelayConfig } from "./open_tunnel.ts";
import { stdioStream } from "./stdio.ts";

export interface SenderConnectOptions {
  relay: SenderRelayConfig;
  /** How the relay credentials authenticate, for the start line; default the tokens' kind. */
  relayAuth?: RelayAuthMode;
  target: string;
  signal: AbortSignal;
  logger: Logger;
  observer?: TunnelObserver;
  /** The local end; default stdin/stdout. Tests pass a socket. */
  local?: ByteStream;
  features?: readonly string[];
  halfCloseLingerMs?: number;
}

/**
 * Resolves when the tunnel ended cleanly (or `signal` stopped it once open); throws AztunnelError
 * with the reason otherwise, including a stop before the tunnel opened. The local stream is always
 * closed.
 */
export async function runConnect(opts: SenderConnectOptions): Promise<void> {
  const local = opts.local ?? stdioStream();
  opts.logger.info("connect starting", {
    target: opts.target,
    ...senderAuthAttrs(opts.relay, opts.relayAuth),
  });
  let tunnel;
  try {
    tunnel = await openEnvelopeTunnel(opts.target, opts);
  } catch (err) {
    local.close();
    if (err instanceof RelayDialError) new CredentialWatch(opts.relay, opts.logger).failed(err);
    // Nothing was bridged, so ssh must not take this for a session that ended normally.
    if (opts.signal.aborted) {
      throw new AztunnelError("interrupted", "interrupted before the tunnel opened", {
        cause: err,
      });
    }
    throw err;
  }
  const result = await observedBridge("sender", tunnel.target, local, tunnel.socket, {
    halfClose: tunnel.features.includes(FEATURE_HALF_CLOSE),
    // The remote end ends ssh's session even with half-close.
    endOnPeerEof: true,
    signal: opts.signal,
    halfCloseLingerMs: opts.halfCloseLingerMs,
    logger: tunnel.logger,
    observer: opts.observer,
  });
  if (result.error) {
    throw new AztunnelError("tunnel_failed", `tunnel failed: ${errorMessage(result.error)}`, {
      cause: result.error,
    });
  }
}
