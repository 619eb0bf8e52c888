import assert from "node:assert/strict";
import { ArmClient, ArmError, describeFetchFailure } from "../../lib/arc/arm.ts";
import {
  ArcArmError,
  createEndpoint,
  createServiceConfiguration,
  explainArmError,
  getServiceConfigurationPort,
  listCredentials,
  parseRelayCredentials,
} from "../../lib/arc/hybrid_connectivity.ts";
import { AztunnelError } from "../../lib/errors.ts";

const RID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.HybridCompute/machines/vm1";
const EP = `${RID}/providers/Microsoft.HybridConnectivity/endpoints/default`;

interface Seen {
  method: string;
  url: URL;
  headers: Headers;
  body: unknown;
}

/** A fetch that records requests and answers from a script (Response or thrown error). */
function scriptedFetch(script: Array<Response | Error>) {
  const seen: Seen[] = [];
  const fn: typeof fetch = async (input, init) => {
    const req = new Request(input, init);
    const text = await req.text();
    seen.push({
      method: req.method,
      url: new URL(req.url),
      headers: req.headers,
      body: text ? JSON.parse(text) : undefined,
    });
    const next = script.shift();
    assert.ok(next, `unexpected request ${req.method} ${req.url}`);
    if (next instanceof Error) throw next;
    return next;
  };
  return { fn, seen };
}

function client(script: Array<Response | Error>, retryDelaysMs: number[] = [0, 0, 0]) {
  const f = scriptedFetch(script);
  let tokenCalls = 0;
  const arm = new ArmClient({
    endpoint: new URL("https://management.example"),
    tokens: {
      get: () => {
        tokenCalls++;
        return Promise.resolve({ token: "arm-jwt", expiresAt: Date.now() + 3600e3 });
      },
    },
    fetch: f.fn,
    retryDelaysMs,
  });
  return { arm, seen: f.seen, tokenCalls: () => tokenCalls };
}

const armErr = (status: number, code: string, message = "m") =>
  Response.json({ error: { code, message } }, { status });

const creds = {
  relay: {
    namespaceName: "azgnrelay-eastus-l1",
    namespaceNameSuffix: "servicebus.windows.net",
    hybridConnectionName: "microsoft.hybridcompute/machines/abc",
    accessKey: "SharedAccessSignature sr=x&sig=y&se=1&skn=z",
    expiresOn: 1_700_010_800,
    serviceConfigurationToken: "sct",
  },
};

Deno.test("listCredentials: POST path, query, body, bearer token", async () => {
  const c = client([Response.json(creds)]);
  const got = await listCredentials(c.arm, RID, "SSH");
  assert.equal(got.namespaceName, "azgnrelay-eastus-l1");
  assert.equal(got.expiresOn, 1_700_010_800);
  const [req] = c.seen;
  assert.equal(req.method, "POST");
  assert.equal(req.url.origin, "https://management.example");
  assert.equal(req.url.pathname, `${EP}/listCredentials`);
  assert.equal(req.url.search, "?expiresin=10800&api-version=2023-03-15");
  assert.deepEqual(req.body, { serviceName: "SSH" });
  assert.equal(req.headers.get("authorization"), "Bearer arm-jwt");
  assert.equal(req.headers.get("content-type"), "application/json");
});

Deno.test("endpoint and service configuration: PUTs and GET with the documented bodies", async () => {
  const c = client([
    Response.json({}),
    Response.json({}),
    Response.json({ name: "WAC", properties: { serviceName: "WAC", port: 443 } }),
    Response.json({ properties: { port: "6516" } }),
    Response.json({ properties: {} }),
  ]);
  await createEndpoint(c.arm, RID, "WAC");
  await createServiceConfiguration(c.arm, RID, "WAC", 443);
  assert.equal(await getServiceConfigurationPort(c.arm, RID, "WAC"), 443);
  assert.equal(await getServiceConfigurationPort(c.arm, RID, "WAC"), 6516);
  assert.equal(await getServiceConfigurationPort(c.arm, RID, "WAC"), undefined);
  assert.deepEqual(
    c.seen.slice(0, 3).map((s) => [s.method, s.url.pathname + s.url.search, s.body]),
    [
      ["PUT", `${EP}?api-version=2023-03-15`, { properties: { type: "default" } }],
      [
        "PUT",
        `${EP}/serviceConfigurations/WAC?api-version=2023-03-15`,
        { properties: { serviceName: "WAC", port: 443 } },
      ],
      ["GET", `${EP}/serviceConfigurations/WAC?api-version=2023-03-15`, undefined],
    ],
  );
});

Deno.test("a 403 on the endpoint PUT names the operation and the missing permission", async () => {
  const c = client([armErr(403, "AuthorizationFailed", "no write")]);
  await assert.rejects(createEndpoint(c.arm, RID, "SSH"), (e: unknown) => {
    assert.ok(e instanceof ArcArmError);
    assert.equal(e.code, "auth_failed");
    assert.equal(e.operation, "create HybridConnectivity endpoint");
    assert.match(
      e.message,
      /^create HybridConnectivity endpoint: ARM API error \(HTTP 403\): AuthorizationFailed: no write; /,
    );
    assert.match(e.message, /endpoints\/write/);
    return true;
  });
});

Deno.test("ARM errors keep status and body; listCredentials wraps them", async () => {
  const c = client([new Response("upstream exploded", { status: 400 })]);
  await assert.rejects(listCredentials(c.arm, RID, "SSH"), (e: unknown) => {
    assert.ok(e instanceof ArcArmError);
    assert.ok(e.cause instanceof ArmError);
    assert.equal(e.status, 400);
    assert.equal(e.message, "list credentials: ARM API error (HTTP 400): upstream exploded");
    return true;
  });
});

Deno.test("retries 429/5xx and network failures, honouring Retry-After, then succeeds", async () => {
  const started = Date.now();
  const c = client([
    armErr(503, "ServiceUnavailable"),
    new Response("", { status: 429, headers: { "retry-after": "0" } }),
    new TypeError("connection reset"),
    Response.json(creds),
  ]);
  await listCredentials(c.arm, RID, "SSH");
  assert.equal(c.seen.length, 4);
  assert.equal(c.tokenCalls(), 4);
  assert.ok(Date.now() - started < 1000);
});

Deno.test("gives up after the retries with the last answer; never retries a 403", async () => {
  const c = client([armErr(500, "A"), armErr(500, "B")], [0]);
  await assert.rejects(listCredentials(c.arm, RID, "SSH"), /HTTP 500\): B: m$/);
  const d = client([armErr(403, "AuthorizationFailed")]);
  await assert.rejects(listCredentials(d.arm, RID, "SSH"), /HTTP 403/);
  assert.equal(d.seen.length, 1);
  const n = client([new TypeError("dns error"), new TypeError("dns error")], [0]);
  await assert.rejects(listCredentials(n.arm, RID, "SSH"), {
    code: "arm_unreachable",
    message: "list credentials: cannot reach ARM at https://management.example: dns error",
  });
});

Deno.test("an aborted request stops at once", async () => {
  const c = client([armErr(503, "X")], [60_000]);
  const ac = new AbortController();
  const p = listCredentials(c.arm, RID, "SSH", ac.signal);
  ac.abort(new DOMException("stop", "AbortError"));
  await assert.rejects(p, { name: "AbortError" });
});

Deno.test("incomplete credentials are refused without echoing secrets", () => {
  assert.throws(
    () => parseRelayCredentials({ relay: { ...creds.relay, namespaceName: "" } }),
    { message: "incomplete relay credentials in response" },
  );
  assert.throws(() => parseRelayCredentials({}), AztunnelError);
  assert.equal(
    parseRelayCredentials({
      relay: { ...creds.relay, namespaceNameSuffix: ".servicebus.windows.net" },
    })
      .namespaceNameSuffix,
    "servicebus.windows.net",
  );
});

Deno.test("explanations: role, resource id, provider registration, sign-in", () => {
  const e = (status: number, code: string, message = "") => new ArmError(status, code, message, "");
  assert.match(
    explainArmError("list credentials", e(403, "AuthorizationFailed"), RID)!,
    /listCredentials\/action .*Virtual Machine Local User Login/,
  );
  assert.match(
    explainArmError("create service configuration", e(403, "AuthorizationFailed"), RID)!,
    /^setting the machine's SSH port needs .*serviceConfigurations\/write .*Contributor/,
  );
  assert.match(
    explainArmError("get service configuration", e(403, "AuthorizationFailed"), RID)!,
    /serviceConfigurations\/read/,
  );
  assert.equal(
    explainArmError("get service configuration", e(404, "ResourceNotFound", "config"), RID),
    undefined,
  );
  const missingMachine = e(
    404,
    "ResourceNotFound",
    "The Resource 'Microsoft.HybridCompute/machines/vm1' under resource group 'rg' was not found.",
  );
  assert.match(explainArmError("list credentials", missingMachine, RID)!, /check --resource-id/);
  assert.match(
    explainArmError("list credentials", e(404, "ResourceGroupNotFound"), RID)!,
    /was not found/,
  );
  assert.equal(
    explainArmError("list credentials", e(404, "ResourceNotFound", "endpoint"), RID),
    undefined,
  );
  assert.match(
    explainArmError("create HybridConnectivity endpoint", e(404, "ResourceNotFound"), RID)!,
    /check --resource-id/,
  );
  assert.match(
    explainArmError("list credentials", e(409, "MissingSubscriptionRegistration"), RID)!,
    /az provider register -n Microsoft\.HybridConnectivity/,
  );
  assert.match(
    explainArmError("list credentials", e(401, "InvalidAuthenticationToken"), RID)!,
    /az login/,
  );
  assert.equal(explainArmError("list credentials", e(400, "BadRequest"), RID), undefined);
});

/** A TCP server that accepts connections and never answers (an ARM front end gone quiet). */
function silentServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.TcpConn[] = [];
  const waiters: Array<() => void> = [];
  const loop = (async () => {
    for (;;) {
      try {
        conns.push(await listener.accept());
      } catch {
        return;
      }
      for (const w of waiters.splice(0)) w();
    }
  })();
  return {
    url: new URL(`http://127.0.0.1:${listener.addr.port}`),
    conns,
    /** Resolves once `n` connections have been accepted. */
    async accepted(n: number) {
      while (conns.length < n) await new Promise<void>((r) => waiters.push(r));
    },
    async close() {
      listener.close();
      await loop;
      for (const c of conns) c.close();
    },
  };
}

function networkClient(endpoint: URL, retryDelaysMs: number[], tryTimeoutMs?: number) {
  return new ArmClient({
    endpoint,
    tokens: { get: () => Promise.resolve({ token: "arm-jwt", expiresAt: Date.now() + 3600e3 }) },
    retryDelaysMs,
    tryTimeoutMs,
  });
}

Deno.test("an ARM that accepts TCP but never answers: each try times out, is retried, then a clear error", async () => {
  const silent = silentServer();
  try {
    const arm = networkClient(silent.url, [0], 100);
    await assert.rejects(listCredentials(arm, RID, "SSH"), (e: unknown) => {
      assert.ok(e instanceof AztunnelError);
      assert.equal(e.code, "arm_timeout");
      assert.equal(
        e.message,
        `list credentials: ARM at ${silent.url.origin} did not answer within 100ms`,
      );
      return true;
    });
    // One try plus one retry, each on its own connection.
    await silent.accepted(2);
    assert.equal(silent.conns.length, 2);
  } finally {
    await silent.close();
  }
});

Deno.test("an unreachable ARM names the cause: connection refused", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  const arm = networkClient(new URL(`http://127.0.0.1:${port}`), []);
  await assert.rejects(listCredentials(arm, RID, "SSH"), {
    code: "arm_unreachable",
    message: `list credentials: cannot reach ARM at http://127.0.0.1:${port}: connection refused`,
  });
});

Deno.test("describeFetchFailure: Deno's nested causes become the part a user can act on", () => {
  const denoFetch = (inner: string) =>
    new TypeError("fetch failed", {
      cause: new Error(`error sending request for url (https://arm.example/x?y=1): ${inner}`),
    });
  assert.equal(
    describeFetchFailure(
      denoFetch("client error (Connect): tcp connect error: Connection refused (os error 111)"),
    ),
    "connection refused",
  );
  assert.equal(
    describeFetchFailure(
      denoFetch(
        "client error (Connect): dns error: failed to lookup address information: Name or service not known",
      ),
    ),
    "DNS name not found (Name or service not known)",
  );
  assert.equal(
    describeFetchFailure(
      denoFetch("client error (Connect): invalid peer certificate: UnknownIssuer"),
    ),
    "invalid peer certificate: UnknownIssuer",
  );
  assert.equal(describeFetchFailure(new TypeError("dns error")), "dns error");
});

Deno.test("a 403 on listCredentials names the role of the service, with the exact action", async () => {
  const action = "Microsoft.HybridConnectivity/endpoints/listCredentials/action";
  for (
    const [service, role, other] of [
      ["WAC", "Windows Admin Center Administrator Login", "Virtual Machine Local User Login"],
      ["SSH", "Virtual Machine Local User Login", "Windows Admin Center Administrator Login"],
    ] as const
  ) {
    const c = client([armErr(403, "AuthorizationFailed", "denied")]);
    await assert.rejects(listCredentials(c.arm, RID, service), (e: unknown) => {
      assert.ok(e instanceof ArcArmError);
      assert.ok(e.message.includes(`lacks ${action} on the machine`), e.message);
      assert.ok(e.message.includes(`(Owner, Contributor or "${role}")`), e.message);
      assert.ok(!e.message.includes(other), e.message);
      return true;
    });
  }
});
