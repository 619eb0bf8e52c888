/**
 * `aztunnel doctor --resource-id`: the Arc side, read-only (unlike `arc connect`, nothing is
 * created): an ARM token, ARM answering, the subscription's Microsoft.HybridConnectivity
 * registration, the machine's HybridConnectivity endpoint, its service configuration naming the
 * right port, and relay credentials listed.
 */
import { errorMessage } from "../errors.ts";
import { ArmClient, ArmError } from "../arc/arm.ts";
import { armScope } from "../arc/config.ts";
import {
  ArcArmError,
  type ArcRelayCredentials,
  explainArmError,
  getServiceConfigurationPort,
  isMachineNotFound,
  listCredentials,
} from "../arc/hybrid_connectivity.ts";
import { type ArcTarget, ARM_FIX_HINT } from "../arc/session.ts";
import { type CredentialLike, EntraTokenCache } from "../relay/entra.ts";
import { type Check, fail, type Outcome, pass, runChecks, skip } from "./checks.ts";
import { identityOf } from "./credential.ts";

export const ARM_TOKEN_CHECK = "ARM token";
export const ARM_CHECK = "ARM reachable";
export const PROVIDER_CHECK = "resource provider registered";
export const ENDPOINT_CHECK = "HybridConnectivity endpoint";
export const SERVICE_CONFIG_CHECK = "service configuration";
export const CREDENTIALS_CHECK = "relay credentials listed";

export const PROVIDER_NAMESPACE = "Microsoft.HybridConnectivity";
export const PROVIDER_API_VERSION = "2021-04-01";
export const PROVIDER_FIX = `az provider register --namespace ${PROVIDER_NAMESPACE}`;

export interface ArcDoctorOptions extends ArcTarget {
  armEndpoint: URL;
  timeoutMs: number;
  write(line: string): void;
  /** For ARM tokens; default the process-wide DefaultAzureCredential. */
  credential?: CredentialLike;
  fetch?: typeof fetch;
  signal?: AbortSignal;
}

/** Prints one line per check; true when every check that ran passed. */
export function runArcDoctor(opts: ArcDoctorOptions): Promise<boolean> {
  const tokens = new EntraTokenCache(armScope(opts.armEndpoint), {
    credential: opts.credential,
    fixHint: ARM_FIX_HINT,
  });
  // One try each: doctor reports what ARM says now, within its own deadline.
  const arm = new ArmClient({
    endpoint: opts.armEndpoint,
    tokens,
    fetch: opts.fetch,
    retryDelaysMs: [],
    tryTimeoutMs: opts.timeoutMs,
  });
  const state = new ArcState(arm, opts);
  const checks: Check[] = [
    { label: ARM_TOKEN_CHECK, run: (s) => armToken(tokens, s) },
    { label: ARM_CHECK, needs: [ARM_TOKEN_CHECK], run: (s) => state.list(s) },
    { label: PROVIDER_CHECK, needs: [ARM_CHECK], run: (s) => provider(arm, opts.resourceId, s) },
    { label: ENDPOINT_CHECK, needs: [ARM_CHECK], run: () => Promise.resolve(state.endpoint()) },
    { label: SERVICE_CONFIG_CHECK, needs: [ENDPOINT_CHECK], run: (s) => state.serviceConfig(s) },
    {
      label: CREDENTIALS_CHECK,
      needs: [ENDPOINT_CHECK],
      run: () => Promise.resolve(state.credentials()),
    },
  ];
  return runChecks(checks, { timeoutMs: opts.timeoutMs, write: opts.write, signal: opts.signal });
}

async function armToken(tokens: EntraTokenCache, signal: AbortSignal): Promise<Outcome> {
  try {
    const token = await tokens.get(signal);
    return pass(`Entra ID (DefaultAzureCredential), token for ${identityOf(token.token)}`);
  } catch (err) {
    return fail(errorMessage(err).replace(`; to fix: ${ARM_FIX_HINT}`, ""), ARM_FIX_HINT);
  }
}

/**
 * The subscription's registration of Microsoft.HybridConnectivity. A 403 is not a failure: reading
 * providers needs read access at subscription scope, which a machine-scoped role lacks, and the
 * endpoint line still explains a missing registration.
 */
async function provider(arm: ArmClient, resourceId: string, signal: AbortSignal): Promise<Outcome> {
  const subscription = /^\/subscriptions\/([^/]+)/i.exec(resourceId)?.[1] ?? "";
  const path = `/subscriptions/${encodeURIComponent(subscription)}/providers/` +
    `${PROVIDER_NAMESPACE}?api-version=${PROVIDER_API_VERSION}`;
  let answer: unknown;
  try {
    answer = await arm.request("GET", path, undefined, signal);
  } catch (err) {
    if (err instanceof ArmError && err.status === 403) {
      return skip(
        `ARM refused reading the provider (HTTP 403${err.armCode ? ` ${err.armCode}` : ""}): ` +
          "the identity may lack read access at subscription scope; a missing registration shows " +
          "below",
      );
    }
    if (err instanceof ArmError && err.status === 404) {
      return fail(
        `get provider: ${err.message}`,
        `check the subscription ${subscription} in --resource-id and that you are signed in to ` +
          "its tenant",
      );
    }
    return fail(`get provider: ${errorMessage(err)}`);
  }
  const state = (answer as { registrationState?: unknown } | null)?.registrationState;
  const named = typeof state === "string" && state !== "" ? state : "(no registrationState)";
  if (state === "Registered") {
    return pass(`${PROVIDER_NAMESPACE} is Registered in subscription ${subscription}`);
  }
  return fail(`${PROVIDER_NAMESPACE} is ${named} in subscription ${subscription}`, PROVIDER_FIX);
}

/** The one listCredentials answer every later check reads. */
class ArcState {
  readonly #arm: ArmClient;
  readonly #opts: ArcDoctorOptions;
  #listed: ArcRelayCredentials | ArcArmError | undefined;

  constructor(arm: ArmClient, opts: ArcDoctorOptions) {
    this.#arm = arm;
    this.#opts = opts;
  }

  async list(signal: AbortSignal): Promise<Outcome> {
    const { resourceId, service } = this.#opts;
    try {
      this.#listed = await listCredentials(this.#arm, resourceId, service, signal);
      return pass(`${this.#opts.armEndpoint.origin} answered`);
    } catch (err) {
      if (!(err instanceof ArcArmError)) {
        return fail(
          errorMessage(err),
          "check the network path to ARM (proxy, firewall) and --arm-endpoint",
        );
      }
      this.#listed = err;
      return pass(`${this.#opts.armEndpoint.origin} answered (HTTP ${err.status})`);
    }
  }

  endpoint(): Outcome {
    const listed = this.#listed;
    if (!(listed instanceof ArcArmError)) return pass('endpoint "default" exists');
    if (listed.status === 412) return pass('endpoint "default" exists');
    const cause = listed.cause as ArmError;
    const { resourceId, service } = this.#opts;
    if (listed.status === 404 && !isMachineNotFound(cause)) {
      return fail(
        'the machine has no endpoint "default" (HTTP 404)',
        `connect once with \`az ssh arc --resource-id ${resourceId}\` (or aztunnel arc connect), ` +
          "which creates it",
      );
    }
    return fail(
      `${listed.operation}: ${cause.message}`,
      explainArmError(listed.operation, cause, resourceId, service),
    );
  }

  async serviceConfig(signal: AbortSignal): Promise<Outcome> {
    const { resourceId, service, port } = this.#opts;
    const missing = fail(
      `the endpoint has no ${service} service configuration`,
      `connect once with \`az ssh arc --resource-id ${resourceId} --port ${port}\` (or aztunnel ` +
        `arc connect --port ${port}), which creates it`,
    );
    if (this.#listed instanceof ArcArmError) return missing;
    let configured: number | undefined;
    try {
      configured = await getServiceConfigurationPort(this.#arm, resourceId, service, signal);
    } catch (err) {
      if (err instanceof ArcArmError && err.status === 404) return missing;
      // Credentials were issued, so the configuration exists; the agent checks the port.
      return pass(`${service} is configured (its port is not readable: ${errorMessage(err)})`);
    }
    if (configured === port) return pass(`${service} → port ${port}`);
    return fail(
      `${service} is configured for port ${configured ?? "(none)"}, not ${port}`,
      `pass --port ${configured ?? port}, or connect once with \`az ssh arc --resource-id ` +
        `${resourceId} --port ${port}\` (or aztunnel arc connect --port ${port}) to point it there`,
    );
  }

  credentials(): Outcome {
    const listed = this.#listed;
    if (listed instanceof ArcArmError || listed === undefined) {
      return skip(`needs "${SERVICE_CONFIG_CHECK}"`);
    }
    const expires = new Date(listed.expiresOn * 1000).toISOString();
    return pass(
      `relay ${listed.namespaceName}.${listed.namespaceNameSuffix}, hybrid connection ` +
        `${listed.hybridConnectionName}, valid until ${expires}`,
    );
  }
}
