/**
 * A fake Azure Resource Manager for one Arc machine: the Microsoft.HybridConnectivity calls of
 * aztunnel-reference.md §6.1 (plus the service configuration GET `az ssh` makes) with the
 * documented JSON shapes. State as on Azure: no endpoint gives listCredentials 404, an endpoint
 * without the service's configuration 412. listCredentials answers with a real SAS `accessKey`
 * signed with the local relay-server's policy key, so the relay accepts the Arc dial, and a
 * service configuration token bound to the configured port (`tokenFor`), which the fake agent
 * checks against the port it is asked to reach.
 * Also the subscription's GET of the Microsoft.HybridConnectivity provider (`getProvider`, api-version
 * 2021-04-01) that `doctor` reads, answering `registrationState` (default "Registered").
 * Bearer tokens are checked when `jwtKey` is given (HS256 from the fake token endpoint, audience =
 * this server's origin).
 */
import { createSasToken } from "../../lib/relay/sas.ts";

export const API_VERSION = "2023-03-15";
export const PROVIDER_API_VERSION = "2021-04-01";

export type ArmOp =
  | "list"
  | "putEndpoint"
  | "getServiceConfig"
  | "putServiceConfig"
  | "getProvider";

export interface InjectedFailure {
  status: number;
  code: string;
  message: string;
  /** How many calls fail before the op works again; default: all of them. */
  times?: number;
}

export interface FakeArmOptions {
  /** The machine; any other resource id gets ARM's "machine not found" 404. */
  resourceId: string;
  relay: {
    namespaceName: string;
    namespaceNameSuffix: string;
    hybridConnectionName: string;
    /** The relay-server policy that signs `accessKey`. */
    keyName: string;
    key: string;
  };
  /** Prefix of the service configuration tokens handed out with the credentials. */
  serviceConfigurationToken?: string;
  /** The default endpoint exists from the start (default true). */
  endpointExists?: boolean;
  /** Service configurations (service → port) of an existing endpoint; default `{ SSH: 22 }`. */
  serviceConfigs?: Record<string, number>;
  /** Lifetime of the issued credentials (`expiresOn`); default: the `expiresin` asked for. */
  credentialLifetimeSec?: number;
  /** `registrationState` of Microsoft.HybridConnectivity in the machine's subscription. */
  providerState?: string;
  /** Verify `Authorization: Bearer` HS256 JWTs with this key. */
  jwtKey?: string;
  failures?: Partial<Record<ArmOp, InjectedFailure>>;
}

export interface ArmCall {
  readonly op: ArmOp | "unknown";
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly body: unknown;
}

export interface FakeArm {
  /** `http://127.0.0.1:PORT`, for `--arm-endpoint`. */
  readonly url: string;
  readonly calls: ArmCall[];
  count(op: ArmOp): number;
  /** `METHOD path` of every call, in order (path without the query). */
  sequence(): string[];
  /** Ports stored by service configuration PUTs, by service name. */
  readonly serviceConfigs: Map<string, number>;
  /** The prefix of every issued service configuration token (for "no secret in logs" checks). */
  readonly serviceConfigurationToken: string;
  /** The service configuration token issued while the configuration names `port`. */
  tokenFor(port: number): string;
  /** Makes `op` fail from now on (or stop failing, with undefined). */
  setFailure(op: ArmOp, failure: InjectedFailure | undefined): void;
  /** Resolves once `op` has been called `n` times. */
  waitFor(op: ArmOp, n?: number): Promise<void>;
  close(): Promise<void>;
}

const encoder = new TextEncoder();

function armError(status: number, code: string, message: string): Response {
  return Response.json({ error: { code, message } }, { status });
}

async function verifyJwt(token: string, key: string, audience: string): Promise<string | null> {
  const parts = token.split(".");
  if (parts.length !== 3) return "malformed token";
  const b64 = (s: string) =>
    Uint8Array.from(
      atob(s.replaceAll("-", "+").replaceAll("_", "/") + "=".repeat((4 - s.length % 4) % 4)),
      (c) => c.charCodeAt(0),
    );
  const cryptoKey = await crypto.subtle.importKey(
    "raw",
    encoder.encode(key),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["verify"],
  );
  const ok = await crypto.subtle.verify(
    "HMAC",
    cryptoKey,
    b64(parts[2]),
    encoder.encode(`${parts[0]}.${parts[1]}`),
  );
  if (!ok) return "bad signature";
  const claims = JSON.parse(new TextDecoder().decode(b64(parts[1]))) as {
    aud?: string;
    exp?: number;
  };
  if (typeof claims.exp !== "number" || claims.exp * 1000 <= Date.now()) return "token expired";
  if (claims.aud?.replace(/\/$/, "") !== audience) return `wrong audience ${claims.aud}`;
  return null;
}

/** What the fake ARM remembers between calls. */
interface ArmState {
  readonly opts: FakeArmOptions;
  readonly prefix: string;
  /** `/subscriptions/<sub>/providers/Microsoft.HybridConnectivity` of the machine's subscription. */
  readonly providerPath: string;
  readonly serviceConfigs: Map<string, number>;
  readonly tokenFor: (port: number) => string;
  endpointExists: boolean;
}

function opOf(
  method: string,
  path: string,
  prefix: string,
  providerPath: string,
): ArmOp | "unknown" {
  if (method === "GET" && path.toLowerCase() === providerPath.toLowerCase()) return "getProvider";
  if (method === "POST" && path === `${prefix}/listCredentials`) return "list";
  if (method === "PUT" && path === prefix) return "putEndpoint";
  if (method === "PUT" && path.startsWith(`${prefix}/serviceConfigurations/`)) {
    return "putServiceConfig";
  }
  if (method === "GET" && path.startsWith(`${prefix}/serviceConfigurations/`)) {
    return "getServiceConfig";
  }
  return "unknown";
}

/** ARM's answers that do not depend on the operation: auth, resource, api-version, route. */
async function refusal(
  req: Request,
  url: URL,
  path: string,
  op: ArmOp | "unknown",
  opts: FakeArmOptions,
  origin: string,
): Promise<Response | undefined> {
  if (opts.jwtKey) {
    const auth = req.headers.get("authorization") ?? "";
    const why = auth.startsWith("Bearer ")
      ? await verifyJwt(auth.slice(7), opts.jwtKey, origin)
      : "missing bearer token";
    if (why) {
      return armError(401, "InvalidAuthenticationToken", `The access token is invalid: ${why}.`);
    }
  }
  if (op === "getProvider") {
    if (url.searchParams.get("api-version") !== PROVIDER_API_VERSION) {
      return armError(400, "InvalidApiVersionParameter", "unsupported api-version");
    }
    return undefined;
  }
  if (!path.startsWith(opts.resourceId + "/") && path !== opts.resourceId) {
    const name = path.split("/providers/")[1]?.split("/").slice(0, 3).join("/") ?? path;
    const group = /resourceGroups\/([^/]+)/i.exec(path)?.[1] ?? "?";
    return armError(
      404,
      "ResourceNotFound",
      `The Resource '${name}' under resource group '${group}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
    );
  }
  if (url.searchParams.get("api-version") !== API_VERSION) {
    return armError(400, "InvalidApiVersionParameter", "unsupported api-version");
  }
  if (op === "unknown") return armError(404, "NotFound", `no route for ${req.method} ${path}`);
  return undefined;
}

function serviceConfigResponse(prefix: string, service: string, port: number): Response {
  return Response.json({
    id: `${prefix}/serviceConfigurations/${service}`,
    name: service,
    type: "Microsoft.HybridConnectivity/endpoints/serviceConfigurations",
    properties: { serviceName: service, port, provisioningState: "Succeeded" },
  });
}

function getProvider(st: ArmState): Response {
  return Response.json({
    id: st.providerPath,
    namespace: "Microsoft.HybridConnectivity",
    registrationState: st.opts.providerState ?? "Registered",
    registrationPolicy: "RegistrationRequired",
    resourceTypes: [],
  });
}

function putEndpoint(st: ArmState): Response {
  st.endpointExists = true;
  return Response.json({
    id: st.prefix,
    name: "default",
    type: "Microsoft.HybridConnectivity/endpoints",
    properties: { type: "default", provisioningState: "Succeeded" },
  });
}

function getServiceConfig(st: ArmState, path: string): Response {
  const service = path.slice(path.lastIndexOf("/") + 1);
  const port = st.endpointExists ? st.serviceConfigs.get(service) : undefined;
  if (port === undefined) {
    return armError(404, "ResourceNotFound", `service configuration ${service} not found`);
  }
  return serviceConfigResponse(st.prefix, service, port);
}

function putServiceConfig(st: ArmState, path: string, body: unknown): Response {
  const service = path.slice(path.lastIndexOf("/") + 1);
  const props = (body as { properties?: { serviceName?: string; port?: number } })?.properties;
  if (!st.endpointExists) return armError(404, "ResourceNotFound", "endpoint default not found");
  if (props?.serviceName !== service || typeof props.port !== "number") {
    return armError(400, "InvalidRequestContent", "serviceName/port missing");
  }
  st.serviceConfigs.set(service, props.port);
  return serviceConfigResponse(st.prefix, service, props.port);
}

async function listCredentials(st: ArmState, url: URL, body: unknown): Promise<Response> {
  const service = (body as { serviceName?: string })?.serviceName;
  const expiresIn = Number(url.searchParams.get("expiresin"));
  if (!service || !(expiresIn > 0 && expiresIn <= 10800)) {
    return armError(400, "InvalidRequestContent", "serviceName and expiresin are required");
  }
  if (!st.endpointExists) {
    return armError(
      404,
      "ResourceNotFound",
      "The Resource 'Microsoft.HybridConnectivity/endpoints/default' was not found.",
    );
  }
  const port = st.serviceConfigs.get(service);
  if (port === undefined) {
    return armError(412, "PreconditionFailed", `service configuration ${service} not found`);
  }
  const expiresOn = Math.floor(Date.now() / 1000) + (st.opts.credentialLifetimeSec ?? expiresIn);
  const r = st.opts.relay;
  const accessKey = await createSasToken(
    `https://${r.namespaceName}.${r.namespaceNameSuffix}/${r.hybridConnectionName}`,
    r.keyName,
    r.key,
    expiresOn,
  );
  return Response.json({
    relay: {
      namespaceName: r.namespaceName,
      namespaceNameSuffix: r.namespaceNameSuffix,
      hybridConnectionName: r.hybridConnectionName,
      accessKey,
      expiresOn,
      serviceConfigurationToken: st.tokenFor(port),
    },
  });
}

export function startFakeArm(opts: FakeArmOptions): FakeArm {
  const prefix = `${opts.resourceId}/providers/Microsoft.HybridConnectivity/endpoints/default`;
  const subscription = /^\/subscriptions\/([^/]+)/i.exec(opts.resourceId)?.[1] ?? "";
  const providerPath = `/subscriptions/${subscription}/providers/Microsoft.HybridConnectivity`;
  const scToken = opts.serviceConfigurationToken ?? `sct-${crypto.randomUUID()}`;
  const calls: ArmCall[] = [];
  const st: ArmState = {
    opts,
    prefix,
    providerPath,
    serviceConfigs: new Map<string, number>(),
    tokenFor: (port: number) => `${scToken}.port-${port}`,
    endpointExists: opts.endpointExists ?? true,
  };
  if (st.endpointExists) {
    for (const [service, port] of Object.entries(opts.serviceConfigs ?? { SSH: 22 })) {
      st.serviceConfigs.set(service, port);
    }
  }
  const failures = new Map(Object.entries(opts.failures ?? {})) as Map<ArmOp, InjectedFailure>;
  const waiters = new Set<() => void>();
  const count = (op: ArmOp) => calls.filter((c) => c.op === op).length;
  let origin = "";

  const injected = (op: ArmOp): Response | undefined => {
    const f = failures.get(op);
    if (!f) return undefined;
    if (f.times !== undefined) {
      if (f.times <= 0) return undefined;
      f.times--;
    }
    return armError(f.status, f.code, f.message);
  };

  const handle = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    const path = decodeURIComponent(url.pathname);
    const text = await req.text();
    let body: unknown = undefined;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      return armError(400, "InvalidRequestContent", "body is not JSON");
    }
    const op = opOf(req.method, path, prefix, providerPath);
    calls.push({ op, method: req.method, path, query: url.searchParams, body });
    for (const w of [...waiters]) w();
    const refused = await refusal(req, url, path, op, opts, origin);
    if (refused || op === "unknown") return refused as Response;
    const failure = injected(op);
    if (failure) return failure;
    switch (op) {
      case "putEndpoint":
        return putEndpoint(st);
      case "getServiceConfig":
        return getServiceConfig(st, path);
      case "putServiceConfig":
        return putServiceConfig(st, path, body);
      case "list":
        return await listCredentials(st, url, body);
      case "getProvider":
        return getProvider(st);
    }
  };

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handle);
  origin = `http://127.0.0.1:${server.addr.port}`;
  return {
    url: origin,
    calls,
    count,
    sequence: () => calls.map((c) => `${c.method} ${c.path}`),
    serviceConfigs: st.serviceConfigs,
    serviceConfigurationToken: scToken,
    tokenFor: st.tokenFor,
    setFailure(op, failure) {
      if (failure) failures.set(op, { ...failure });
      else failures.delete(op);
    },
    async waitFor(op, n = 1) {
      while (count(op) < n) {
        await new Promise<void>((resolve) => {
          const w = () => {
            waiters.delete(w);
            resolve();
          };
          waiters.add(w);
        });
      }
    },
    async close() {
      await server.shutdown();
    },
  };
}
