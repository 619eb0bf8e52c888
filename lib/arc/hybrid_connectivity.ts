/**
 * The Microsoft.HybridConnectivity calls (aztunnel-reference.md §6.1): list the relay credentials of
 * the machine's `default` endpoint, create that endpoint, and read or write its service
 * configuration (the port the agent may connect to). Failures are explained: which role is
 * missing, a wrong resource id, an unregistered provider.
 */
import { AztunnelError } from "../errors.ts";
import { ARM_API_VERSION, type ArmClient, ArmError } from "./arm.ts";
import type { ArcService } from "./config.ts";

/** The maximum lifetime ARM grants (3 h). */
export const CREDENTIAL_LIFETIME_SEC = 10800;

/** The `relay` object of a listCredentials answer. */
export interface ArcRelayCredentials {
  readonly namespaceName: string;
  readonly namespaceNameSuffix: string;
  readonly hybridConnectionName: string;
  /** A full `SharedAccessSignature …` string, sent as `Servicebusauthorization`. Secret. */
  readonly accessKey: string;
  /** Unix seconds. */
  readonly expiresOn: number;
  /** Sent as `Service-Configuration-Token`. Secret. */
  readonly serviceConfigurationToken: string;
}

export type ArcOperation =
  | "list credentials"
  | "create HybridConnectivity endpoint"
  | "get service configuration"
  | "create service configuration";

/** An ARM failure of one Arc operation, message `<operation>: ARM API error (HTTP n): …[; hint]`. */
export class ArcArmError extends AztunnelError {
  readonly operation: ArcOperation;
  readonly status: number;
  readonly armCode: string;
  constructor(operation: ArcOperation, cause: ArmError, hint: string | undefined) {
    super(
      cause.status === 401 || cause.status === 403 ? "auth_failed" : "arm_error",
      `${operation}: ${cause.message}${hint ? `; ${hint}` : ""}`,
      { cause },
    );
    this.name = "ArcArmError";
    this.operation = operation;
    this.status = cause.status;
    this.armCode = cause.armCode;
  }
}

const endpointPath = (rid: string) =>
  `${rid}/providers/Microsoft.HybridConnectivity/endpoints/default`;

export async function listCredentials(
  arm: ArmClient,
  resourceId: string,
  service: ArcService,
  signal?: AbortSignal,
): Promise<ArcRelayCredentials> {
  const path = `${endpointPath(resourceId)}/listCredentials?expiresin=${CREDENTIAL_LIFETIME_SEC}` +
    `&api-version=${ARM_API_VERSION}`;
  const body = await call(
    "list credentials",
    resourceId,
    service,
    () => arm.request("POST", path, { serviceName: service }, signal),
  );
  return parseRelayCredentials(body);
}

const serviceConfigPath = (rid: string, service: ArcService) =>
  `${endpointPath(rid)}/serviceConfigurations/${service}?api-version=${ARM_API_VERSION}`;

/** PUT the default endpoint (idempotent, but it disrupts the agent's listener when it exists). */
export async function createEndpoint(
  arm: ArmClient,
  resourceId: string,
  service: ArcService,
  signal?: AbortSignal,
): Promise<void> {
  await call("create HybridConnectivity endpoint", resourceId, service, () =>
    arm.request(
      "PUT",
      `${endpointPath(resourceId)}?api-version=${ARM_API_VERSION}`,
      { properties: { type: "default" } },
      signal,
    ));
}

/** PUT the service configuration: the agent lets `service` reach `port` on the machine. */
export async function createServiceConfiguration(
  arm: ArmClient,
  resourceId: string,
  service: ArcService,
  port: number,
  signal?: AbortSignal,
): Promise<void> {
  await call("create service configuration", resourceId, service, () =>
    arm.request(
      "PUT",
      serviceConfigPath(resourceId, service),
      { properties: { serviceName: service, port } },
      signal,
    ));
}

/** The port of the service configuration; undefined when ARM's answer names none. */
export async function getServiceConfigurationPort(
  arm: ArmClient,
  resourceId: string,
  service: ArcService,
  signal?: AbortSignal,
): Promise<number | undefined> {
  const body = await call(
    "get service configuration",
    resourceId,
    service,
    () => arm.request("GET", serviceConfigPath(resourceId, service), undefined, signal),
  );
  const port = (body as { properties?: { port?: unknown } } | null)?.properties?.port;
  const n = typeof port === "string" && /^\d+$/.test(port) ? Number(port) : port;
  return typeof n === "number" && Number.isInteger(n) ? n : undefined;
}

async function call<T>(
  op: ArcOperation,
  resourceId: string,
  service: ArcService,
  fn: () => Promise<T>,
): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ArmError) {
      throw new ArcArmError(op, err, explainArmError(op, err, resourceId, service));
    }
    if (err instanceof AztunnelError && err.code !== "auth_unavailable") {
      throw new AztunnelError(err.code, `${op}: ${err.message}`, { cause: err });
    }
    throw err;
  }
}

/**
 * A 404 that says the machine (or its group or subscription) is missing, as opposed to the
 * endpoint: no amount of endpoint creation helps then.
 */
export function isMachineNotFound(err: ArmError): boolean {
  if (err.status !== 404) return false;
  if (/^(ResourceGroupNotFound|SubscriptionNotFound|ParentResourceNotFound)$/.test(err.armCode)) {
    return true;
  }
  // ARM's text for a missing parent: "The Resource 'Microsoft.HybridCompute/machines/x' under …".
  return /'Microsoft\.HybridCompute\/machines\/[^']*' under resource group/i.test(err.armMessage);
}

/**
 * The built-in role that grants listCredentials for each service without the rest of Contributor:
 * naming the SSH role to a WAC user sends them to assign a role that does not open WAC's port.
 */
export const LOGIN_ROLES: Readonly<Record<ArcService, string>> = {
  SSH: "Virtual Machine Local User Login",
  WAC: "Windows Admin Center Administrator Login",
};

/** The one sentence that tells the user what to change, or undefined when ARM said it all. */
export function explainArmError(
  op: ArcOperation,
  err: ArmError,
  resourceId: string,
  service: ArcService = "SSH",
): string | undefined {
  if (
    err.armCode === "MissingSubscriptionRegistration" ||
    /not registered to use namespace 'Microsoft\.HybridConnectivity'/i.test(err.armMessage)
  ) {
    return "the subscription is not registered for the Microsoft.HybridConnectivity resource " +
      "provider: run `az provider register -n Microsoft.HybridConnectivity` (needs rights on the " +
      "subscription) and try again";
  }
  if (err.status === 401) {
    return "ARM did not accept the access token: sign in again (`az login`, with `--tenant` for the " +
      "machine's tenant) or check the managed identity";
  }
  if (err.status === 403) {
    if (op === "list credentials") {
      return "your identity lacks Microsoft.HybridConnectivity/endpoints/listCredentials/action on " +
        `the machine: assign it a role that includes it (Owner, Contributor or "${
          LOGIN_ROLES[service]
        }") on the machine or its resource group`;
    }
    if (op === "get service configuration") {
      return "reading the service configuration needs " +
        "Microsoft.HybridConnectivity/endpoints/serviceConfigurations/read on the machine";
    }
    if (op === "create service configuration") {
      return `setting the machine's ${service} port needs ` +
        "Microsoft.HybridConnectivity/endpoints/serviceConfigurations/write on the machine (Owner " +
        "or Contributor): assign such a role, or ask someone who has one to connect once with " +
        "this --port";
    }
    return "creating the connectivity endpoint needs Microsoft.HybridConnectivity/endpoints/write " +
      "and endpoints/serviceConfigurations/write on the machine (Owner or Contributor): assign " +
      "such a role, or ask someone who has one to connect once so the endpoint exists";
  }
  // A 404 on listCredentials or the configuration GET usually means only that part is missing.
  const partMayBeMissing = op === "list credentials" || op === "get service configuration";
  if (err.status === 404 && (!partMayBeMissing || isMachineNotFound(err))) {
    return `the machine "${resourceId}" was not found: check --resource-id (` +
      "/subscriptions/<subscription>/resourceGroups/<group>/providers/Microsoft.HybridCompute/" +
      "machines/<name>) and that you are signed in to the subscription's tenant";
  }
  return undefined;
}

/** Validates the shape of a listCredentials answer; secrets never reach the error text. */
export function parseRelayCredentials(body: unknown): ArcRelayCredentials {
  const relay = (body as { relay?: Record<string, unknown> } | null)?.relay;
  const str = (k: string) => (typeof relay?.[k] === "string" ? relay[k] as string : "");
  const creds: ArcRelayCredentials = {
    namespaceName: str("namespaceName"),
    namespaceNameSuffix: str("namespaceNameSuffix").replace(/^\.+/, ""),
    hybridConnectionName: str("hybridConnectionName"),
    accessKey: str("accessKey"),
    expiresOn: typeof relay?.expiresOn === "number"
      ? relay.expiresOn
      : Number(relay?.expiresOn ?? 0),
    serviceConfigurationToken: str("serviceConfigurationToken"),
  };
  if (!creds.namespaceName || !creds.hybridConnectionName) {
    throw new AztunnelError("arm_bad_response", "incomplete relay credentials in response");
  }
  return creds;
}
