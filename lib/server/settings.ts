/**
 * RelayServerOptions checked and completed with their defaults: every usage error a relay can
 * raise is raised here, before anything listens.
 */
import { formatDuration, MAX_DURATION_MS } from "../duration.ts";
import { UsageError } from "../errors.ts";
import { hycoNameProblem } from "../relay/relay_flags.ts";
import type { HostPort } from "../net/host_port.ts";
import { isLoopback } from "../net/loopback.ts";
import type { PublicBase } from "./accept_message.ts";
import {
  checkInteger,
  DEFAULT_BIND,
  DEFAULT_HALF_CLOSED_TIMEOUT_MS,
  DEFAULT_HEADER_TIMEOUT_MS,
  DEFAULT_IN_FLIGHT_BYTES,
  DEFAULT_MAX_LISTENERS,
  DEFAULT_MAX_MESSAGE_SIZE,
  DEFAULT_MAX_PENDING_HEADS,
  DEFAULT_PING_INTERVAL_MS,
  DEFAULT_PONG_TIMEOUT_MS,
  DEFAULT_RENDEZVOUS_IDLE_TIMEOUT_MS,
  DEFAULT_RENDEZVOUS_TIMEOUT_MS,
  DEFAULT_TOKEN_GRACE_MS,
  parseBind,
  parsePublicUrl,
  parseRendezvousUrl,
  type RelayServerOptions,
  type RendezvousAddress,
} from "./options.ts";
import { checkTls } from "./tls.ts";

export interface ServerSettings {
  /** `--bind` as given (trimmed), for messages. */
  readonly bindText: string;
  readonly bind: HostPort;
  readonly publicBase?: PublicBase;
  readonly rendezvousAddr?: RendezvousAddress;
  readonly secure: boolean;
  readonly hycos: readonly string[];
  readonly maxListeners: number;
  readonly maxMessageSize: number;
  readonly maxPendingHeads: number;
  readonly rendezvousTimeoutMs: number;
  readonly rendezvousIdleTimeoutMs: number;
  readonly pingIntervalMs: number;
  readonly pongTimeoutMs: number;
  readonly headerTimeoutMs: number;
  readonly latencyMs: number;
  readonly halfClosedTimeoutMs: number;
  readonly inFlightBytes: number;
  readonly tokenGraceMs: number;
}

/** Throws UsageError for bad options, including a TLS certificate or key Deno refuses. */
export function resolveSettings(opts: RelayServerOptions): ServerSettings {
  const bindText = opts.bind ?? DEFAULT_BIND;
  const bind = parseBind(bindText);
  const publicBase = opts.publicUrl !== undefined ? parsePublicUrl(opts.publicUrl) : undefined;
  if (!publicBase && !isLoopback(bind.hostname)) {
    // Without it the accept address would come from a client's Host header: an SSRF lever.
    throw new UsageError(
      `--public-url is required when --bind is not a loopback address (${bindText})`,
    );
  }
  const counts = {
    maxListeners: checkInteger(opts.maxListeners ?? DEFAULT_MAX_LISTENERS, "--max-listeners", 1),
    maxMessageSize: checkInteger(
      opts.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE,
      "--max-message-size",
      1,
    ),
    maxPendingHeads: checkInteger(
      opts.maxPendingHeads ?? DEFAULT_MAX_PENDING_HEADS,
      "maxPendingHeads",
      1,
    ),
  };
  const times = resolveTimes(opts);
  const hycos = [...new Set((opts.hycos ?? []).map((h) => h.replace(/^\/+|\/+$/g, "")))];
  if (hycos.some((h) => h === "")) throw new UsageError("--hyco must not be empty");
  for (const h of hycos) {
    const why = hycoNameProblem(h);
    if (why) throw new UsageError(`invalid --hyco ${JSON.stringify(h)}: ${why}`);
  }

  if (opts.tls) checkTls(opts.tls);
  const secure = opts.tls !== undefined;
  const rendezvousAddr = opts.rendezvousUrl !== undefined
    ? parseRendezvousUrl(opts.rendezvousUrl, secure)
    : undefined;
  return {
    bindText: bindText.trim(),
    bind,
    publicBase,
    rendezvousAddr,
    secure,
    hycos,
    ...counts,
    ...times,
    inFlightBytes: opts.inFlightBytes ?? DEFAULT_IN_FLIGHT_BYTES,
    tokenGraceMs: opts.tokenGraceMs ?? DEFAULT_TOKEN_GRACE_MS,
  };
}

type Times = Pick<
  ServerSettings,
  | "rendezvousTimeoutMs"
  | "rendezvousIdleTimeoutMs"
  | "pingIntervalMs"
  | "pongTimeoutMs"
  | "headerTimeoutMs"
  | "latencyMs"
  | "halfClosedTimeoutMs"
>;

/** The durations: positive where a zero would make no sense, and within setTimeout's range. */
function resolveTimes(opts: RelayServerOptions): Times {
  const times: Times = {
    rendezvousTimeoutMs: opts.rendezvousTimeoutMs ?? DEFAULT_RENDEZVOUS_TIMEOUT_MS,
    rendezvousIdleTimeoutMs: opts.rendezvousIdleTimeoutMs ?? DEFAULT_RENDEZVOUS_IDLE_TIMEOUT_MS,
    pingIntervalMs: opts.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS,
    pongTimeoutMs: opts.pongTimeoutMs ?? DEFAULT_PONG_TIMEOUT_MS,
    headerTimeoutMs: opts.headerTimeoutMs ?? DEFAULT_HEADER_TIMEOUT_MS,
    latencyMs: opts.latencyMs ?? 0,
    halfClosedTimeoutMs: opts.halfClosedTimeoutMs ?? DEFAULT_HALF_CLOSED_TIMEOUT_MS,
  };
  const positive = [
    ["--rendezvous-timeout", times.rendezvousTimeoutMs],
    ["--rendezvous-idle-timeout", times.rendezvousIdleTimeoutMs],
    ["pingIntervalMs", times.pingIntervalMs],
    ["pongTimeoutMs", times.pongTimeoutMs],
    ["headerTimeoutMs", times.headerTimeoutMs],
  ] as const;
  for (const [flag, ms] of positive) {
    if (!(ms > 0)) throw new UsageError(`${flag} must be positive`);
  }
  if (!(times.latencyMs >= 0)) throw new UsageError("--latency must not be negative");
  // Above this setTimeout fires after 1 ms; the CLI's parseDuration already refuses such values.
  for (
    const [flag, ms] of [
      ...positive,
      ["--latency", times.latencyMs],
      ["halfClosedTimeoutMs", opts.halfClosedTimeoutMs ?? 0],
    ] as const
  ) {
    if (ms > MAX_DURATION_MS) {
      throw new UsageError(`${flag} must be at most ${formatDuration(MAX_DURATION_MS)}`);
    }
  }
  return times;
}
