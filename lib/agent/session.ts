/**
 * One connection on the agent socket: the request line, the tunnel, the answer, then the bridge
 * (the socket is the tunnel's local end, as a TCP client is for port-forward). Nothing is bridged
 * unless the listener accepted; otherwise the client gets its reason and code. The socket is read
 * through a `ClientInput` from the request line on, so a client that sends before the answer
 * (early data) has those bytes go out with the envelope on a warm leg that grants it, or held in
 * the socket until the bridge otherwise; on a refusal they are dropped with the connection.
 */
import { closeQuietly, deadline } from "../async.ts";
import { errorCode, errorMessage } from "../errors.ts";
import { writeAll } from "../net/write_all.ts";
import type { Logger } from "../observe/log.ts";
import { ClientInput } from "../sender/early_data.ts";
import type { OpenedTunnel } from "../sender/open_tunnel.ts";
import { normalizeTarget } from "../sender/target.ts";
import { observedBridge } from "../tunnel/bridge.ts";
import { FEATURE_HALF_CLOSE } from "../tunnel/envelope.ts";
import type { TunnelObserver } from "../tunnel/observer.ts";
import type { TunnelOpener } from "./opener.ts";
import {
  type AgentReply,
  type AgentRequest,
  encodeEarlyAck,
  encodeReply,
  type Line,
  parseRequest,
  readLine,
  withPrefix,
} from "./protocol.ts";

/** How long a client may take to send its request line. */
export const REQUEST_TIMEOUT_MS = 10_000;

export interface SessionOptions {
  opener: TunnelOpener;
  /** Aborted when the agent stops: gives up on a request or a tunnel still opening. */
  opening: AbortSignal;
  /** Aborted when the drain is over: cuts the bridge. */
  cancel: AbortSignal;
  /** Marks the data phase (the drain waits for it); returns its end. */
  enterBridge(): () => void;
  logger: Logger;
  observer?: TunnelObserver;
  halfCloseLingerMs?: number;
  requestTimeoutMs?: number;
}

/** Serves `conn` to its end and closes it; never rejects. */
export async function serveSession(conn: Deno.Conn, opts: SessionOptions): Promise<void> {
  try {
    const request = await readRequest(conn, opts);
    if (!request) return;
    // Taken: from here on the client is always answered (unless it goes).
    if (request.early && !(await send(conn, encodeEarlyAck()))) return;
    const input = new ClientInput(withPrefix(conn, request.rest));
    const tunnel = await openOrRefuse(conn, request.target, input, opts);
    if (!tunnel) return;
    await bridge(input, tunnel, opts);
  } finally {
    closeQuietly(conn);
  }
}

async function readRequest(
  conn: Deno.Conn,
  opts: SessionOptions,
): Promise<(AgentRequest & { rest: Uint8Array }) | null> {
  let line: Line | null;
  try {
    line = await deadline(readLine(conn), opts.requestTimeoutMs ?? REQUEST_TIMEOUT_MS, {
      signal: opts.opening,
    });
    if (!line) return null;
    const request = parseRequest(line.line);
    return { ...request, target: normalizeTarget(request.target), rest: line.rest };
  } catch (err) {
    if (opts.opening.aborted) return null;
    opts.logger.debug("agent request refused", { error: errorMessage(err) });
    await answer(conn, { ok: false, code: "bad_request", message: errorMessage(err) });
    return null;
  }
}

async function openOrRefuse(
  conn: Deno.Conn,
  target: string,
  input: ClientInput,
  opts: SessionOptions,
): Promise<OpenedTunnel | null> {
  let tunnel: OpenedTunnel;
  try {
    tunnel = await opts.opener.open(target, { signal: opts.opening, earlyData: input });
  } catch (err) {
    // openEnvelopeTunnel has logged it; the client gets the listener's code when there is one.
    await answer(conn, {
      ok: false,
      code: errorCode(err) || "rejected",
      message: errorMessage(err),
    });
    return null;
  }
  if (!(await answer(conn, { ok: true }))) {
    tunnel.socket.closeNow();
    await tunnel.socket.closed;
    return null;
  }
  return tunnel;
}

async function bridge(
  input: ClientInput,
  tunnel: OpenedTunnel,
  opts: SessionOptions,
): Promise<void> {
  const leave = opts.enterBridge();
  try {
    const result = await observedBridge(
      "sender",
      tunnel.target,
      input,
      tunnel.socket,
      {
        halfClose: tunnel.features.includes(FEATURE_HALF_CLOSE),
        signal: opts.cancel,
        halfCloseLingerMs: opts.halfCloseLingerMs,
        logger: tunnel.logger,
        observer: opts.observer,
      },
    );
    if (result.error) {
      tunnel.logger.warn("agent tunnel failed", { error: errorMessage(result.error) });
    }
  } finally {
    leave();
  }
}

/** Writes the reply; false when the client has gone. */
function answer(conn: Deno.Conn, reply: AgentReply): Promise<boolean> {
  return send(conn, encodeReply(reply));
}

async function send(conn: Deno.Conn, line: Uint8Array): Promise<boolean> {
  try {
    await writeAll(conn, line);
    return true;
  } catch {
    return false;
  }
}
