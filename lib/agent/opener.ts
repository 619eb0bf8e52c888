/**
 * What the agent needs from the sender: a tunnel to a target. The cold opener dials the relay for
 * each one, as port-forward does; the warm-leg pool plugs in here by implementing the same method.
 */
import type { Logger } from "../observe/log.ts";
import {
  type OpenedTunnel,
  openEnvelopeTunnel,
  type SenderRelayConfig,
} from "../sender/open_tunnel.ts";
import type { OpenOptions } from "../sender/tunnel_source.ts";
import type { TunnelObserver } from "../tunnel/observer.ts";

/** `TunnelSource` is one (warm legs, early data); `coldOpener` is the plain one. */
export interface TunnelOpener {
  /**
   * Throws as `openEnvelopeTunnel` (RelayDialError, EnvelopeRejected, EnvelopeExchangeError).
   * `earlyData`, when the opener uses it, may have read from the client: bridge it, not the socket.
   */
  open(target: string, opts: OpenOptions): Promise<OpenedTunnel>;
}

export interface ColdOpenerOptions {
  relay: SenderRelayConfig;
  logger: Logger;
  observer?: TunnelObserver;
  /** Features to offer; default all. */
  features?: readonly string[];
}

/**
 * A rendezvous per tunnel, no early data; the relay's token provider (one cache) is shared by all
 * of them.
 */
export function coldOpener(opts: ColdOpenerOptions): TunnelOpener {
  return { open: (target, { signal }) => openEnvelopeTunnel(target, { ...opts, signal }) };
}
