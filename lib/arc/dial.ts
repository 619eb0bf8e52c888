/**
 * The WebSocket dial to an Arc-managed relay (aztunnel-reference.md §6.3): the Arc agent on the
 * machine is the listener, so the sender authenticates with the three Arc headers instead of
 * `sb-hc-token`, and 404/503 (agent not registered yet, 30–90 s after an endpoint PUT) are retried
 * with progress lines that explain the wait.
 */
import { AztunnelError, errorMessage } from "../errors.ts";
import { formatDuration } from "../duration.ts";
import type { Logger } from "../observe/log.ts";
import { describeDialFailure, isAuthStatus } from "../relay/dial_error.ts";
import { delay } from "../async.ts";

import { connectWebSocket, type WsConnectOptions } from "../ws/client.ts";
import type { WebSocketConn } from "../ws/conn.ts";
import { WsError, WsHandshakeError } from "../ws/errors.ts";
import type { RelayBase } from "./config.ts";
import type { ArcRelayCredentials } from "./hybrid_connectivity.ts";
import { redactArc } from "./redact.ts";

export interface ArcDialTiming {
  /** Deadline of one upgrade attempt. */
  attemptTimeoutMs: number;
  /** Waits between attempts; the last one repeats. */
  backoffMs: readonly number[];
  /** Normal mode: silent this long before the first "still waiting" line. */
  quietMs: number;
  /** Period of the "still waiting" lines. */
  progressEveryMs: number;
}

export const DEFAULT_ARC_DIAL_TIMING: ArcDialTiming = {
  attemptTimeoutMs: 30_000,
  backoffMs: [1000, 2000, 4000, 5000],
  quietMs: 30_000,
  progressEveryMs: 15_000,
};

export type ArcDialErrorCode = "auth_failed" | "rejected" | "relay_failed" | "aborted";

export class ArcDialError extends AztunnelError {
  declare readonly code: ArcDialErrorCode;
  readonly status?: number;
  constructor(code: ArcDialErrorCode, message: string, opts: { cause?: unknown; status?: number }) {
    super(code, message, { cause: opts.cause });
    this.name = "ArcDialError";
    this.status = opts.status;
  }
}

export interface ArcDialOptions {
  creds: ArcRelayCredentials;
  /** The machine port the agent forwards to (`Microsoft-Guestgateway-Target: localhost:{port}`). */
  port: number;
  /** AZTUNNEL_ARC_RELAY_URL: dial here instead of the namespace from the credentials. */
  relayBase?: RelayBase;
  caCerts?: string[];
  signal?: AbortSignal;
  logger: Logger;
  /** The endpoint was just created or updated: explain the wait from the first retry on. */
  explain: boolean;
  timing?: Partial<ArcDialTiming>;
  /** Injected in tests; defaults to lib/ws's client. */
  connect?: (url: string, opts: WsConnectOptions) => Promise<WebSocketConn>;
  now?: () => number;
}

/** `wss://{namespaceName}.{namespaceNameSuffix}/$hc/{hybridConnectionName}?sb-hc-action=connect&sb-hc-id={uuid}`. */
export function arcRelayUrl(
  creds: ArcRelayCredentials,
  base?: RelayBase,
  id: string = crypto.randomUUID(),
): string {
  const origin = base
    ? `${base.scheme}://${base.host}`
    : `wss://${creds.namespaceName}.${creds.namespaceNameSuffix}`;
  // Segment-wise escaping keeps the `/` of Arc names (as Go sends them) and any odd character safe.
  const path = creds.hybridConnectionName.split("/").map(encodeURIComponent).join("/");
  return `${origin}/$hc/${path}?sb-hc-action=connect&sb-hc-id=${id}`;
}

export function arcHeaders(creds: ArcRelayCredentials, port: number): Record<string, string> {
  return {
    "Servicebusauthorization": creds.accessKey,
    "Service-Configuration-Token": creds.serviceConfigurationToken,
    "Microsoft-Guestgateway-Target": `localhost:${port}`,
  };
}

function isRetryable(err: unknown): err is WsHandshakeError {
  return err instanceof WsHandshakeError && (err.status === 404 || err.status === 503);
}

/** Dials until connected, a non-retryable failure, or `signal` aborts. Throws `ArcDialError`. */
export async function dialArcRelay(opts: ArcDialOptions): Promise<WebSocketConn> {
  const timing = { ...DEFAULT_ARC_DIAL_TIMING, ...opts.timing };
  const connect = opts.connect ?? connectWebSocket;
  const now = opts.now ?? Date.now;
  const log = opts.logger;
  const secrets = [opts.creds.accessKey, opts.creds.serviceConfigurationToken];
  const clean = (text: string) => redactArc(text, secrets);
  const start = now();
  let attempts = 0;
  let lastStatus: number | undefined;
  let progressShown = false;
  let lastProgress = start;

  const statusText = () => (lastStatus === undefined ? "no HTTP response" : String(lastStatus));
  const progress = () => {
    const elapsed = now() - start;
    if (opts.explain) {
      if (!progressShown) {
        log.info(
          "waiting for Arc agent to register a relay listener (expected after creating or updating the HybridConnectivity configuration)",
          { status: lastStatus },
        );
      } else if (now() - lastProgress >= timing.progressEveryMs) {
        log.info("still waiting for Arc agent to register a relay listener", {
          elapsed: formatDuration(elapsed),
          attempts,
        });
      } else return;
    } else {
      const due = progressShown
        ? now() - lastProgress >= timing.progressEveryMs
        : elapsed >= timing.quietMs;
      if (!due) return;
      log.info("still waiting for arc relay listener", {
        elapsed: formatDuration(elapsed),
        attempts,
        lastStatus: statusText(),
      });
    }
    progressShown = true;
    lastProgress = now();
  };

  for (;;) {
    attempts++;
    try {
      const conn = await connect(arcRelayUrl(opts.creds, opts.relayBase), {
        headers: arcHeaders(opts.creds, opts.port),
        caCerts: opts.caCerts,
        signal: opts.signal,
        timeoutMs: timing.attemptTimeoutMs,
      });
      const attrs = {
        elapsed: formatDuration(now() - start),
        attempts,
        lastStatus: lastStatus === undefined ? undefined : String(lastStatus),
      };
      if (progressShown) log.info("arc relay connected", attrs);
      else log.debug("arc relay connected", attrs);
      return conn;
    } catch (err) {
      if (opts.signal?.aborted) throw gaveUp(opts.signal.reason);
      if (!isRetryable(err)) throw classify(err, clean);
      lastStatus = err.status;
      progress();
      log.debug("arc relay dial failed (retrying)", { status: err.status, attempts });
      const waitMs = timing.backoffMs[Math.min(attempts - 1, timing.backoffMs.length - 1)];
      try {
        await delay(waitMs, { signal: opts.signal });
      } catch (reason) {
        throw gaveUp(reason);
      }
    }
  }

  function gaveUp(reason: unknown): ArcDialError {
    const spent = formatDuration(now() - start);
    const message = `dial arc relay: gave up after ${attempts} attempt(s) in ${spent} ` +
      `(last status ${statusText()}): ${errorMessage(reason)}`;
    return new ArcDialError("aborted", clean(message), { cause: reason, status: lastStatus });
  }
}

function classify(err: unknown, clean: (s: string) => string): ArcDialError {
  if (err instanceof WsHandshakeError) {
    const auth = isAuthStatus(err.status);
    const hint = auth
      ? ": the relay refused the Arc credentials (they may have expired or been rotated; try again)"
      : "";
    return new ArcDialError(
      auth ? "auth_failed" : "rejected",
      clean(`dial arc relay: ${describeDialFailure(err)}${hint}`),
      { cause: err, status: err.status },
    );
  }
  if (err instanceof WsError && err.code === "aborted") {
    return new ArcDialError("aborted", "dial arc relay: aborted", { cause: err });
  }
  return new ArcDialError("relay_failed", clean(`dial arc relay: ${errorMessage(err)}`), {
    cause: err,
  });
}
