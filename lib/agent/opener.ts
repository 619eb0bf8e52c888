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
import type { TunnelObserver } from "../tunnel/observer.ts";

export interface TunnelOpener {
  /** Throws as `openEnvelopeTunnel` (RelayDialError, EnvelopeRejected, EnvelopeExchangeError). */
  open(target: string, signal: AbortSignal): Promise<OpenedTunnel>;
}

export interface ColdOpenerOptions {
  relay: SenderRelayConfig;
  logger: Logger;
  observer?: TunnelObserver;
  /** Features to offer; default all. */
  features?: readonly string[];
}

/** A rendezvous per tunnel; the relay's token provider (one cache) is shared by all of them. */
export function coldOpener(opts: ColdOpenerOptions): TunnelOpener {
  return { open: (target, signal) => openEnvelopeTunnel(target, { ...opts, signal }) };
}
