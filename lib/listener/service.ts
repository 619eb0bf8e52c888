/**
 * `relay-listener` as a service: keeps the control channel up and serves each accept (slot →
 * rendezvous → handler). On stop it closes the control channel, abandons accepts that have not
 * reached their data phase, lets bridged tunnels finish for `drainTimeoutMs` (or until `force`),
 * then cancels them.
 */
import { errorMessage } from "../errors.ts";
import { getLogger, type Logger } from "../observe/log.ts";
import { acceptAddressPolicy } from "../relay/accept_address.ts";
import { type AcceptMessage, runControlChannel } from "../relay/control_channel.ts";
import type { RelayEndpoint } from "../relay/endpoint.ts";
import { newId } from "../relay/ids.ts";
import { acceptRendezvous, rejectRendezvous } from "../relay/rendezvous.ts";
import type { TokenProvider } from "../relay/token.ts";
import type { Allowlist } from "../tunnel/allowlist.ts";
import { MAX_ENVELOPE_SIZE } from "../tunnel/envelope.ts";
import type { TunnelObserver } from "../tunnel/observer.ts";
import { TaskTracker } from "../tunnel/tracker.ts";
import { type HandlerConfig, handleTunnel } from "./handler.ts";

export interface ListenerOptions {
  endpoint: RelayEndpoint;
  entity: string;
  tokens: TokenProvider;
  caCerts?: string[];
  /** `--relay-suffix`: its hosts count as the relay's domain for accept addresses. */
  relaySuffix?: string;
  /** `--relay-accept-host`: further hosts (`host` or `host:port`) accept addresses may name. */
  acceptHosts?: readonly string[];
  /** null: every target is permitted (a WARN says so at start). */
  allowlist: Allowlist | null;
  /** Concurrent tunnels; 0 = unlimited. Accepts beyond it are refused with 503. */
  maxConnections?: number;
  /** Envelope read and target dial deadline; default 30 s. */
  connectTimeoutMs?: number;
  keepAlive?: boolean;
  /** How long open tunnels may finish after `signal` aborts; default 10 s. */
  drainTimeoutMs?: number;
  /** See BridgeOptions.halfCloseLingerMs. */
  halfCloseLingerMs?: number;
  signal: AbortSignal;
  /** A second stop request: open tunnels are cut without waiting for the drain. */
  force?: AbortSignal;
  logger?: Logger;
  /** Minted when absent. */
  listenerId?: string;
  observer?: TunnelObserver;
  onConnectedChange?(up: boolean): void;
  /** Test seams. */
  handler?: Pick<HandlerConfig, "dial" | "features" | "pingIntervalMs">;
  controlChannel?: { reconnectBaseMs?: number; pingIntervalMs?: number };
}

export const MAX_CONNECTIONS_STATUS = 503;
export const MAX_CONNECTIONS_DESCRIPTION = "listener at max connections";
const REJECT_TIMEOUT_MS = 10_000;

/** Runs until `opts.signal` aborts and every tunnel has ended. */
export async function runListener(opts: ListenerOptions): Promise<void> {
  const listenerId = opts.listenerId ?? newId();
  const log = (opts.logger ?? getLogger()).with({ listener_id: listenerId });
  if (!opts.allowlist) log.warn("no allowlist configured, all targets will be permitted");
  const max = opts.maxConnections ?? 0;
  const cfg: HandlerConfig = {
    listenerId,
    allowlist: opts.allowlist,
    connectTimeoutMs: opts.connectTimeoutMs ?? 30_000,
    keepAlive: opts.keepAlive ?? true,
    halfCloseLingerMs: opts.halfCloseLingerMs,
    observer: opts.observer,
    ...opts.handler,
  };
  const acceptPolicy = acceptAddressPolicy(opts.endpoint, {
    suffix: opts.relaySuffix,
    extraHosts: opts.acceptHosts,
  });
  const tracker = new TaskTracker(opts.signal);
  const opening = tracker.stopSignal;
  let active = 0;

  // Tunnels outlive the control session that accepted them (unlike the Go tool): a rendezvous
  // socket does not depend on the control channel, and Azure recycles every control channel daily,
  // which would otherwise cut every open ssh session. Only the drain deadline cancels them.
  const onAccept = (accept: AcceptMessage, ctx: { logger: Logger }) => {
    if (max > 0 && active >= max) {
      ctx.logger.warn("accept_dropped", { reason: "semaphore_full" });
      tracker.track(
        rejectRendezvous(accept.address, MAX_CONNECTIONS_STATUS, MAX_CONNECTIONS_DESCRIPTION, {
          caCerts: opts.caCerts,
          timeoutMs: REJECT_TIMEOUT_MS,
          signal: opening,
        }).catch((err) => ctx.logger.debug("reject failed", { error: errorMessage(err) })),
      );
      return;
    }
    active++;
    ctx.logger.debug("accept acquired");
    tracker.track((async () => {
      try {
        const ws = await acceptRendezvous(accept.address, {
          caCerts: opts.caCerts,
          logger: ctx.logger,
          // The drain aborts `opening` before `cancelSignal`, so this covers both.
          signal: opening,
          // Go's read limit, for the envelope and (lib/ws has one limit per socket) every message
          // after it: Go and Deno senders never send larger ones.
          maxMessageSize: MAX_ENVELOPE_SIZE,
        });
        await handleTunnel(ws, cfg, {
          logger: ctx.logger,
          signal: tracker.cancelSignal,
          opening,
          enterBridge: () => tracker.enterBridge(),
        });
      } catch {
        // acceptRendezvous logged accept_dropped; the handler never rejects
      } finally {
        active--;
        ctx.logger.debug("accept released");
      }
    })());
  };

  await runControlChannel({
    endpoint: opts.endpoint,
    entity: opts.entity,
    tokens: opts.tokens,
    caCerts: opts.caCerts,
    logger: log,
    signal: opts.signal,
    acceptPolicy,
    onAccept,
    onConnectedChange: opts.onConnectedChange,
    reconnectBaseMs: opts.controlChannel?.reconnectBaseMs,
    pingIntervalMs: opts.controlChannel?.pingIntervalMs,
  });
  await tracker.drain(opts.drainTimeoutMs ?? 10_000, { logger: log, force: opts.force });
}
