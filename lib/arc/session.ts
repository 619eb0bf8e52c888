/**
 * One Arc target (machine, service, port) for the life of a command: ARM client, relay credentials
 * (listCredentials; endpoint creation only when ARM says it is missing) and the relay dial.
 *
 * Unlike the Go tool, credentials are cached until 5 minutes before `expiresOn` (one ARM call per
 * 3 hours instead of one per connection), and the start-up follows `az ssh`: a 404 from
 * listCredentials creates the endpoint and its service configuration, a 412 only the service
 * configuration (a PUT on an existing endpoint disrupts the agent's listener), and credentials
 * for a machine configured for another port are followed by a service configuration PUT, since the
 * agent refuses a token issued for another port. Every other failure is explained and ends the
 * command: no PUT fixes a missing role or a wrong resource id.
 */
import { abortable } from "../async.ts";
import { AztunnelError, errorMessage } from "../errors.ts";
import { getLogger, type Logger } from "../observe/log.ts";
import { type CredentialLike, EntraTokenCache } from "../relay/entra.ts";
import { type ByteStream, observedBridge } from "../tunnel/bridge.ts";
import type { BridgeResult } from "../tunnel/bridge_result.ts";
import type { TunnelObserver } from "../tunnel/observer.ts";
import type { WebSocketConn } from "../ws/conn.ts";
import { WsError } from "../ws/errors.ts";
import { ArmClient, ArmError } from "./arm.ts";
import { type ArcService, armScope, type RelayBase } from "./config.ts";
import { ArcDialError, type ArcDialOptions, type ArcDialTiming, dialArcRelay } from "./dial.ts";
import {
  ArcArmError,
  type ArcRelayCredentials,
  createEndpoint,
  createServiceConfiguration,
  getServiceConfigurationPort,
  isMachineNotFound,
  listCredentials,
} from "./hybrid_connectivity.ts";

/** Credentials are replaced this long before ARM says they expire. */
export const CREDENTIAL_REFRESH_SKEW_MS = 5 * 60_000;

export const ARM_FIX_HINT =
  "sign in with `az login` (or run with a managed or workload identity) " +
  "as an identity that may use the machine";

export interface ArcTarget {
  /** Full machine resource id (validated by parseResourceId). */
  resourceId: string;
  port: number;
  service: ArcService;
}

export interface ArcSessionOptions extends ArcTarget {
  armEndpoint: URL;
  /** AZTUNNEL_ARC_RELAY_URL. */
  relayBase?: RelayBase;
  caCerts?: string[];
  /** For ARM tokens; defaults to the process-wide DefaultAzureCredential. */
  credential?: CredentialLike;
  fetch?: typeof fetch;
  armRetryDelaysMs?: readonly number[];
  /** Deadline of one ARM try; default 30 s. */
  armTryTimeoutMs?: number;
  dialTiming?: Partial<ArcDialTiming>;
  /** Replaces lib/ws's client in tests. */
  connect?: ArcDialOptions["connect"];
  logger?: Logger;
  now?: () => number;
  /** Metrics and readiness hooks (role `sender`); the Arc dial is the `dialDuration`. */
  observer?: TunnelObserver;
  /** How long the agent's data still arrives after the local EOF (it cannot half-close). */
  halfCloseLingerMs?: number;
}

export class ArcSession {
  readonly target: ArcTarget;
  readonly #opts: ArcSessionOptions;
  readonly #arm: ArmClient;
  readonly #log: Logger;
  readonly #now: () => number;
  #creds: ArcRelayCredentials | undefined;
  #inflight: Promise<ArcRelayCredentials> | undefined;
  /** Set after endpoint creation; the next dial alone explains the agent's registration wait. */
  #explain = false;

  constructor(opts: ArcSessionOptions) {
    this.#opts = opts;
    this.target = { resourceId: opts.resourceId, port: opts.port, service: opts.service };
    this.#log = opts.logger ?? getLogger();
    this.#now = opts.now ?? Date.now;
    const tokens = new EntraTokenCache(armScope(opts.armEndpoint), {
      credential: opts.credential,
      fixHint: ARM_FIX_HINT,
      now: opts.now,
    });
    this.#arm = new ArmClient({
      endpoint: opts.armEndpoint,
      tokens,
      fetch: opts.fetch,
      retryDelaysMs: opts.armRetryDelaysMs,
      tryTimeoutMs: opts.armTryTimeoutMs,
      logger: this.#log,
    });
  }

  /**
   * The first credential call. Creates what ARM says is missing (404: endpoint and service
   * configuration; 412: the service configuration), or points the service configuration at the
   * target port when it names another; then asks for credentials again.
   */
  async start(signal?: AbortSignal): Promise<void> {
    const { resourceId, service, port } = this.target;
    let creds: ArcRelayCredentials | undefined;
    let missing: MissingPart | undefined;
    try {
      creds = await listCredentials(this.#arm, resourceId, service, signal);
    } catch (err) {
      missing = missingPart(err);
      if (!missing) throw err;
    }
    if (creds) {
      const configured = await this.#configuredPort(signal);
      if (configured === port) {
        this.#store(creds);
        return;
      }
      this.#log.info(
        "updating the Arc service configuration to the target port; the Arc agent may need a moment to register a relay listener",
        { resource: resourceId, service, port, configuredPort: configured ?? "none" },
      );
    } else {
      this.#log.info(
        "creating Arc HybridConnectivity configuration; the Arc agent may need a moment to register a relay listener",
        { resource: resourceId, service, port, missing },
      );
      if (missing === "endpoint") await createEndpoint(this.#arm, resourceId, service, signal);
    }
    await createServiceConfiguration(this.#arm, resourceId, service, port, signal);
    this.#store(await listCredentials(this.#arm, resourceId, service, signal));
    this.#explain = true;
  }

  /**
   * The port the service configuration names (undefined: none, so it must be written). When it
   * cannot be read (e.g. a role with listCredentials but no read), the credentials are used as
   * issued, as `az ssh` does: the agent will say whether they fit.
   */
  async #configuredPort(signal: AbortSignal | undefined): Promise<number | undefined> {
    const { resourceId, service, port } = this.target;
    try {
      return await getServiceConfigurationPort(this.#arm, resourceId, service, signal);
    } catch (err) {
      signal?.throwIfAborted();
      if (err instanceof ArcArmError && err.status === 404) return undefined;
      const why = { error: errorMessage(err) };
      this.#log.debug("cannot read the Arc service configuration; using the credentials", why);
      return port;
    }
  }

  /** Valid relay credentials: cached until 5 minutes before expiry, one ARM call at a time. */
  credentials(signal?: AbortSignal): Promise<ArcRelayCredentials> {
    const c = this.#creds;
    if (c && this.#now() < c.expiresOn * 1000 - CREDENTIAL_REFRESH_SKEW_MS) {
      return Promise.resolve(c);
    }
    this.#inflight ??= listCredentials(
      this.#arm,
      this.target.resourceId,
      this.target.service,
    ).then((fresh) => this.#store(fresh)).finally(() => {
      this.#inflight = undefined;
    });
    return abortable(this.#inflight, signal);
  }

  /** Opens the raw byte tunnel to the machine's port with `creds` (from `credentials()`). */
  async dial(
    creds: ArcRelayCredentials,
    signal?: AbortSignal,
    logger: Logger = this.#log,
  ): Promise<WebSocketConn> {
    const explain = this.#explain;
    this.#explain = false;
    const observer = this.#opts.observer;
    const started = performance.now();
    try {
      const conn = await dialArcRelay({
        creds,
        port: this.target.port,
        relayBase: this.#opts.relayBase,
        caCerts: this.#opts.caCerts,
        signal,
        logger,
        explain,
        timing: this.#opts.dialTiming,
        connect: this.#opts.connect,
        now: this.#opts.now,
      });
      observer?.relayDialEnded?.();
      return conn;
    } catch (err) {
      // Revoked or rotated credentials: the next connection asks ARM again.
      if (err instanceof AztunnelError && err.code === "auth_failed" && this.#creds === creds) {
        this.#creds = undefined;
      }
      if (!(err instanceof ArcDialError && err.code === "aborted")) {
        observer?.connectionError?.("sender", isDialTimeout(err) ? "dial_timeout" : "relay_failed");
        observer?.relayDialEnded?.(err);
      }
      throw err;
    } finally {
      observer?.dialDuration?.("sender", performance.now() - started);
    }
  }

  /**
   * Carries raw bytes between `local` and `ws` (from `dial`) until either side ends, counted by the
   * observer under the target `resourceId:port`.
   */
  bridge(
    local: ByteStream,
    ws: WebSocketConn,
    signal: AbortSignal | undefined,
    logger: Logger = this.#log,
  ): Promise<BridgeResult> {
    // Raw bytes: no envelope, so no half-close.
    return observedBridge("sender", `${this.target.resourceId}:${this.target.port}`, local, ws, {
      halfClose: false,
      halfCloseLingerMs: this.#opts.halfCloseLingerMs,
      signal,
      logger,
      observer: this.#opts.observer,
    });
  }

  #store(creds: ArcRelayCredentials): ArcRelayCredentials {
    this.#creds = creds;
    this.#log.debug("arc relay credentials obtained", {
      namespace: `${creds.namespaceName}.${creds.namespaceNameSuffix}`,
      expiresOn: new Date(creds.expiresOn * 1000).toISOString(),
    });
    return creds;
  }
}

/** An attempt that ran into its deadline: `dial_timeout` in the metrics, as in Go. */
function isDialTimeout(err: unknown): boolean {
  const cause = err instanceof Error ? err.cause : undefined;
  return cause instanceof WsError && cause.code === "handshake_timeout";
}

type MissingPart = "endpoint" | "service configuration";

/**
 * What a listCredentials failure says is missing: a 404 for the endpoint (not for the machine)
 * or a 412 (the endpoint exists, the service configuration does not); undefined for the rest.
 */
function missingPart(err: unknown): MissingPart | undefined {
  if (!(err instanceof ArcArmError)) return undefined;
  const cause = err.cause;
  if (!(cause instanceof ArmError)) return undefined;
  if (cause.status === 412) return "service configuration";
  if (cause.status === 404 && !isMachineNotFound(cause)) return "endpoint";
  return undefined;
}
