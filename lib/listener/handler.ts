/**
 * One accepted rendezvous on the listener (reference §2.2): read the envelope, check it (parse →
 * version → empty target → allowlist → dial, with the Go tool's error texts), answer, bridge.
 */
import { errorMessage } from "../errors.ts";
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
}

/** Serves one rendezvous socket to the end and closes it (Close 1000 "done"). Never rejects. */
export async function handleTunnel(
  ws: MessageSocket,
  cfg: HandlerConfig,
  ctx: HandlerContext,
): Promise<void> {
  let log = ctx.logger;
  const opening = ctx.signal && ctx.opening
    ? AbortSignal.any([ctx.signal, ctx.opening])
    : ctx.signal ?? ctx.opening;
  const error = (reason: ConnectionErrorReason) =>
    cfg.observer?.connectionError?.("listener", reason);
  const respond = async (res: Omit<ConnectResponse, "version" | "listener_id">) => {
    try {
      await ws.send(
        encodeResponse({ version: ENVELOPE_VERSION, ...res, listener_id: cfg.listenerId }),
      );
      return true;
    } catch (err) {
      log.warn("failed to send response", { error: errorMessage(err) });
      return false;
    }
  };
  const refuse = async (res: { error: string; code?: string }) => {
    await respond({ ok: false, ...res });
    await ws.close(1000, "done").catch(() => ws.closeNow());
  };

  const first = await readEnvelope(ws, cfg.connectTimeoutMs, opening);
  if ("error" in first) {
    log.warn("failed to read envelope", { error: first.error, close_code: first.closeCode });
    error("envelope_error");
    await ws.close(1000, "done").catch(() => ws.closeNow());
    return;
  }
  let env: ConnectEnvelope;
  try {
    env = decodeEnvelope(first.text);
  } catch (err) {
    log.warn("invalid envelope", { error: clipForLog(errorMessage(err)) });
    error("envelope_error");
    return await refuse({ error: "invalid envelope" });
  }
  if (env.version !== ENVELOPE_VERSION) {
    log.warn("unsupported protocol version", { version: env.version });
    error("envelope_error");
    return await refuse({ error: "unsupported protocol version" });
  }
  if (env.bridge_id) log = log.with({ bridge_id: clipForLog(env.bridge_id) });
  const target = env.target;
  const logged = clipForLog(target);
  log.info("connection requested", { target: logged });
  if (target === "") {
    log.warn("invalid envelope", { error: "missing target" });
    error("envelope_error");
    return await refuse({ error: "missing target" });
  }
  if (cfg.allowlist && !cfg.allowlist.allows(target)) {
    log.warn("target not allowed", { target: logged });
    error("allowlist_rejected");
    return await refuse({ error: "target not allowed", code: "not_allowed" });
  }

  const dial = cfg.dial ?? dialTarget;
  const started = performance.now();
  let conn: ByteStream;
  try {
    conn = await dial(target, {
      timeoutMs: cfg.connectTimeoutMs,
      signal: opening,
      keepAlive: cfg.keepAlive,
    });
  } catch (err) {
    const code = err instanceof TargetDialError ? err.dialCode : classifyDialError(err);
    log.warn("dial target failed", { target: logged, error: clipForLog(errorMessage(err)), code });
    error(dialReason(code));
    return await refuse({ error: "connection failed", code });
  } finally {
    cfg.observer?.dialDuration?.("listener", performance.now() - started);
  }

  const features = negotiate(cfg.features ?? FEATURES, offeredFeatures(env));
  if (!await respond({ ok: true, features })) {
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
      logger: log,
      observer: cfg.observer,
    });
  } finally {
    leave?.();
  }
}

function dialReason(code: string): ConnectionErrorReason {
  if (code === "timeout") return "dial_timeout";
  if (code === "dns_not_found" || code === "dns_timeout") return code;
  return "dial_failed";
}

type FirstMessage = { text: string } | { error: string; closeCode?: number };

/** The first message within the deadline. The listener does not check its type, like Go. */
async function readEnvelope(
  ws: MessageSocket,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<FirstMessage> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<FirstMessage>((resolve) => {
    timer = setTimeout(
      () => resolve({ error: `no envelope within ${timeoutMs} ms (timeout)` }),
      timeoutMs,
    );
    onAbort = () => resolve({ error: "listener shutting down" });
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
  });
  const read = ws.receive().then(
    (msg: WsMessage | null): FirstMessage => {
      if (msg === null) {
        const info = ws.closeInfo;
        return { error: `websocket closed with code ${info?.code ?? 1005}`, closeCode: info?.code };
      }
      return { text: msg.type === "text" ? msg.data : new TextDecoder().decode(msg.data) };
    },
    (err): FirstMessage => ({
      error: errorMessage(err),
      closeCode: ws.closeInfo?.code ?? 1006,
    }),
  );
  try {
    return await Promise.race([read, stop]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  }
}
