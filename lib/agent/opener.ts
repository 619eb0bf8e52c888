/**
 * What the agent needs from the sender: a tunnel to a target. `TunnelSource` is the one it gets
 * (warm legs, early data; without a pool, a relay dial per tunnel, as port-forward does).
 */
import type { OpenedTunnel } from "../sender/open_tunnel.ts";
import type { OpenOptions } from "../sender/tunnel_source.ts";

/** A `TunnelSource` in production; the agent needs only this method. */
export interface TunnelOpener {
  /**
   * Throws as `openEnvelopeTunnel` (RelayDialError, EnvelopeRejected, EnvelopeExchangeError).
   * `earlyData`, when the opener uses it, may have read from the client: bridge it, not the socket.
   */
  open(target: string, opts: OpenOptions): Promise<OpenedTunnel>;
}
