/**
 * One accepted rendezvous on the listener (reference §2.2): read the envelope, check it (parse →
 * version → empty target → allowlist → dial, with the Go tool's error texts), answer, bridge.
 */
import { deadline } from "../async.ts";
import { AztunnelError, errorMessage } from "../errors.ts";
import type { Logger } from "../observe/log.ts";
import { type ByteStream, observedBridge } from "../tunnel/bridge.ts";
import type { Allowlist } from "../tunnel/allowlist.ts";
import {
  clipForLog,
  type ConnectEnvelope,
  type ConnectResponse,
  decodeEnvelope,
  encodeResponse,
  ENVELOPE_VERSION,
  FEATURE_HALF_CLOSE,
  FEATURES,
  negotiate,
  offeredFeatures,
} from "../tunnel/envelope.ts";
import {
  classifyDialError,
  dialTarget,
  type DialTargetOptions,
  TargetDialError,
} from "../tunnel/dial_target.ts";
import type { ConnectionErrorReason, TunnelObserver } from "../tunnel/observer.ts";
import type { MessageSocket, WsMessage } from "../ws/types.ts";

export interface HandlerConfig {
  listenerId: string;
  /** null: every target is permitted. */
  allowlist: Allowlist | null;
  /** Bounds the envelope read and the target dial. */
  connectTimeoutMs: number;
  keepAlive: boolean;
  /** Features this listener grants (default all this build implements). */
  features?: readonly string[];
  observer?: TunnelObserver;
  pingIntervalMs?: number;
  /** See BridgeOptions.halfCloseLingerMs. */
  halfCloseLingerMs?: number;
  /** The target dialer; tests inject failures. */
  dial?: (target: string, opts: DialTargetOptions) => Promise<ByteStream>;
}

export interface HandlerContext {
  logger: Logger;
  /** Ends the tunnel in any phase. */
  signal?: AbortSignal;
  /** Ends it only before the data phase (envelope read, target dial): the listener is stopping. */
  opening?: AbortSignal;
  /** Called when the data phase starts; the returned function when it has ended. */
  enterBridge?: () => () => void;
  /** The envelope, when it has been read already (a warm leg, lib/listener/warm_hold.ts). */
  first?: WsMessage;
}

/** What the steps of one rendezvous share. */
interface Rendezvous {
  readonly ws: MessageSocket;
  readonly cfg: HandlerConfig;
  /** Gains the sender's bridge_id once the envelope names one. */
  log: Logger;
}

/** Serves one rendezvous socket to the end and closes it (Close 1000 "done"). Never rejects. */
export async function handleTunnel(
  ws: MessageSocket,
  cfg: HandlerConfig,
  ctx: HandlerContext,
): Promise<void> {
  const opening = ctx.signal && ctx.opening
    ? AbortSignal.any([ctx.signal, ctx.opening])
    : ctx.signal ?? ctx.opening;
  const r: Rendezvous = { ws, cfg, log: ctx.logger };
  const env = await receiveEnvelope(r, opening, ctx.first);
  if (!env) return;
  if (env.bridge_id) r.log = r.log.with({ bridge_id: clipForLog(env.bridge_id) });
  const logged = clipForLog(env.target);
  r.log.info("connection requested", { target: logged });
  // Checked and dialled in the same turn as that line: a stop that follows it finds the dial.
  const refusal = refusalFor(r, env.target);
  if (refusal) {
    await refuse(r, refusal.reason, refusal.response);
    return;
  }
  const conn = await dialForTunnel(r, env.target, opening);
  if (!conn) return;

  const features = negotiate(cfg.features ?? FEATURES, offeredFeatures(env));
  if (!await respond(r, { ok: true, features })) {
    conn.close();
    ws.closeNow();
    await ws.closed;
    return;
  }
  const leave = ctx.enterBridge?.();
  try {
    await observedBridge("listener", logged, conn, ws, {
      halfClose: features.includes(FEATURE_HALF_CLOSE),
      signal: ctx.signal,
      pingIntervalMs: cfg.pingIntervalMs,
      halfCloseLingerMs: cfg.halfCloseLingerMs,
      logger: r.log,
      observer: cfg.observer,
    });
  } finally {
    leave?.();
  }
}

/** Reads the envelope and checks its form and version; null when it was refused or never came. */
async function receiveEnvelope(
  r: Rendezvous,
  opening?: AbortSignal,
  first?: WsMessage,
): Promise<ConnectEnvelope | null> {
  let text: string;
  try {
    text = first ? messageText(first) : await readEnvelope(r.ws, r.cfg.connectTimeoutMs, opening);
  } catch (err) {
    const closeCode = err instanceof EnvelopeReadError ? err.closeCode : undefined;
    r.log.warn("failed to read envelope", { error: errorMessage(err), close_code: closeCode });
    failed(r, "envelope_error");
    await r.ws.close(1000, "done").catch(() => r.ws.closeNow());
    return null;
  }
  let env: ConnectEnvelope;
  try {
    env = decodeEnvelope(text);
  } catch (err) {
    r.log.warn("invalid envelope", { error: clipForLog(errorMessage(err)) });
    return await refuse(r, "envelope_error", { error: "invalid envelope" });
  }
  if (env.version !== ENVELOPE_VERSION) {
    r.log.warn("unsupported protocol version", { version: env.version });
    return await refuse(r, "envelope_error", { error: "unsupported protocol version" });
  }
  return env;
}

interface Refusal {
  reason: ConnectionErrorReason;
  response: { error: string; code?: string };
}

/** Why `target` may not be dialled (logged), or null: empty target, then the allowlist. */
function refusalFor(r: Rendezvous, target: string): Refusal | null {
  if (target === "") {
    r.log.warn("invalid envelope", { error: "missing target" });
    return { reason: "envelope_error", response: { error: "missing target" } };
  }
  if (r.cfg.allowlist && !r.cfg.allowlist.allows(target)) {
    r.log.warn("target not allowed", { target: clipForLog(target) });
    return {
      reason: "allowlist_rejected",
      response: { error: "target not allowed", code: "not_allowed" },
    };
  }
  return null;
}

/** Dials the target; null when that failed (answered with its code and closed). */
async function dialForTunnel(
  r: Rendezvous,
  target: string,
  opening?: AbortSignal,
): Promise<ByteStream | null> {
  const dial = r.cfg.dial ?? dialTarget;
  const started = performance.now();
  try {
    return await dial(target, {
      timeoutMs: r.cfg.connectTimeoutMs,
      signal: opening,
      keepAlive: r.cfg.keepAlive,
    });
  } catch (err) {
    const code = err instanceof TargetDialError ? err.dialCode : classifyDialError(err);
    const error = clipForLog(errorMessage(err));
    r.log.warn("dial target failed", { target: clipForLog(target), error, code });
    return await refuse(r, dialReason(code), { error: "connection failed", code });
  } finally {
    r.cfg.observer?.dialDuration?.("listener", performance.now() - started);
  }
}

function failed(r: Rendezvous, reason: ConnectionErrorReason): void {
  r.cfg.observer?.connectionError?.("listener", reason);
}

/** Sends a response; false (logged) when the socket could not take it. */
async function respond(
  r: Rendezvous,
  res: Omit<ConnectResponse, "version" | "listener_id">,
): Promise<boolean> {
  try {
    await r.ws.send(
      encodeResponse({ version: ENVELOPE_VERSION, ...res, listener_id: r.cfg.listenerId }),
    );
    return true;
  } catch (err) {
    r.log.warn("failed to send response", { error: errorMessage(err) });
    return false;
  }
}

/**
 * Counts the failure, answers `ok: false` and closes; always null (the tunnel is not opened). Data
 * the sender sent after its envelope without waiting for the answer (early data) is read and
 * dropped, one message at a time, so that its Close can get through and nothing piles up.
 */
async function refuse(
  r: Rendezvous,
  reason: ConnectionErrorReason,
  res: { error: string; code?: string },
): Promise<null> {
  failed(r, reason);
  await respond(r, { ok: false, ...res });
  const closing = r.ws.close(1000, "done").catch(() => r.ws.closeNow());
  try {
    while (await r.ws.receive() !== null) continue;
  } catch {
    // Dropped at the close deadline, or broken: nothing left to discard.
  }
  await closing;
  return null;
}

function dialReason(code: string): ConnectionErrorReason {
  if (code === "timeout") return "dial_timeout";
  if (code === "dns_not_found" || code === "dns_timeout") return code;
  return "dial_failed";
}

/** The envelope never came: a timeout, shutdown, the peer's Close or a broken socket. */
class EnvelopeReadError extends AztunnelError {
  /** The peer's close code (1006 for a drop); unset for a timeout or shutdown. */
  readonly closeCode?: number;
  constructor(code: string, message: string, closeCode?: number, options?: ErrorOptions) {
    super(code, message, options);
    this.name = "EnvelopeReadError";
    this.closeCode = closeCode;
  }
}

/**
 * The first message's text within the deadline (the listener does not check its type, like Go);
 * rejects with EnvelopeReadError.
 */
async function readEnvelope(
  ws: MessageSocket,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<string> {
  const read = ws.receive().then(
    (msg: WsMessage | null) => {
      if (msg !== null) return messageText(msg);
      const code = ws.closeInfo?.code;
      throw new EnvelopeReadError("closed", `websocket closed with code ${code ?? 1005}`, code);
    },
    (err) => {
      const code = ws.closeInfo?.code ?? 1006;
      throw new EnvelopeReadError("read_failed", errorMessage(err), code, { cause: err });
    },
  );
  read.catch(() => {}); // the deadline may win; this settles later
  return await deadline(read, timeoutMs, {
    signal,
    onTimeout: () =>
      new EnvelopeReadError("timeout", `no envelope within ${timeoutMs} ms (timeout)`),
  }).catch((err) => {
    if (err instanceof EnvelopeReadError) throw err;
    throw new EnvelopeReadError("shutting_down", "listener shutting down", undefined, {
      cause: err,
    });
  });
}

/** A message as envelope text, whatever its type (the listener does not check it, like Go). */
function messageText(msg: WsMessage): string {
  return msg.type === "text" ? msg.data : new TextDecoder().decode(msg.data);
}
