/**
 * The Arc start-up against the fake ARM, call by call, as `az ssh` makes it: a 404 creates the
 * endpoint and the service configuration, a 412 only the service configuration, and credentials
 * for a machine configured for another port are followed by a service configuration PUT.
 */
import assert from "node:assert/strict";
import { ArcSession } from "../../lib/arc/session.ts";
import { configureLogging, resetLogging } from "../../lib/observe/log.ts";
import { staticCredential } from "../helpers/arc_stack.ts";
import { type FakeArm, type FakeArmOptions, startFakeArm } from "../helpers/fake_arm.ts";

const RID =
  "/subscriptions/00000000-0000-0000-0000-000000000004/resourceGroups/rg/providers/Microsoft.HybridCompute/machines/flow-vm";
const EP = `${RID}/providers/Microsoft.HybridConnectivity/endpoints/default`;
const LIST = `POST ${EP}/listCredentials`;
const PUT_ENDPOINT = `PUT ${EP}`;
const GET_CONFIG = `GET ${EP}/serviceConfigurations/SSH`;
const PUT_CONFIG = `PUT ${EP}/serviceConfigurations/SSH`;

interface Run {
  arm: FakeArm;
  lines: string[];
  token: string;
  error?: Error;
}

/** `ArcSession.start()` for `port` against a fake ARM in the given state. */
async function start(port: number, state: Partial<FakeArmOptions>): Promise<Run> {
  const lines: string[] = [];
  await configureLogging({ level: "debug", write: (l) => lines.push(l) });
  const arm = startFakeArm({
    resourceId: RID,
    relay: {
      namespaceName: "azgnrelay-westeurope-l1",
      namespaceNameSuffix: "servicebus.windows.net",
      hybridConnectionName: "microsoft.hybridcompute/machines/flow",
      keyName: "k",
      key: "relay-key",
    },
    ...state,
  });
  try {
    const session = new ArcSession({
      resourceId: RID,
      port,
      service: "SSH",
      armEndpoint: new URL(arm.url),
      credential: staticCredential,
      armRetryDelaysMs: [],
    });
    try {
      await session.start();
      const creds = await session.credentials();
      return { arm, lines, token: creds.serviceConfigurationToken };
    } catch (err) {
      return { arm, lines, token: "", error: err as Error };
    }
  } finally {
    await arm.close();
    await resetLogging();
  }
}

Deno.test("arc start: 404 (no endpoint) PUTs the endpoint, then the service configuration", async () => {
  const r = await start(2222, { endpointExists: false });
  assert.ifError(r.error);
  assert.deepEqual(r.arm.sequence(), [LIST, PUT_ENDPOINT, PUT_CONFIG, LIST]);
  assert.deepEqual(r.arm.calls[2].body, { properties: { serviceName: "SSH", port: 2222 } });
  assert.equal(r.token, r.arm.tokenFor(2222));
  assert.ok(
    r.lines.some((l) => /creating Arc HybridConnectivity configuration.* missing=endpoint/.test(l)),
  );
});

Deno.test("arc start: 412 (endpoint without configuration) PUTs the service configuration only", async () => {
  const r = await start(22, { serviceConfigs: {} });
  assert.ifError(r.error);
  assert.deepEqual(r.arm.sequence(), [LIST, PUT_CONFIG, LIST]);
  assert.deepEqual(r.arm.calls[1].body, { properties: { serviceName: "SSH", port: 22 } });
  assert.equal(r.token, r.arm.tokenFor(22));
  assert.ok(
    r.lines.some((l) =>
      /creating Arc HybridConnectivity configuration.* missing="service configuration"/.test(l)
    ),
  );
});

Deno.test("arc start: configured for the target port, the credentials are used as issued", async () => {
  const r = await start(22, {});
  assert.ifError(r.error);
  assert.deepEqual(r.arm.sequence(), [LIST, GET_CONFIG]);
  assert.equal(r.token, r.arm.tokenFor(22));
});

Deno.test("arc start: configured for another port, the configuration is PUT and credentials fetched again", async () => {
  const r = await start(2222, { serviceConfigs: { SSH: 22 } });
  assert.ifError(r.error);
  assert.deepEqual(r.arm.sequence(), [LIST, GET_CONFIG, PUT_CONFIG, LIST]);
  assert.deepEqual(r.arm.calls[2].body, { properties: { serviceName: "SSH", port: 2222 } });
  assert.equal(r.arm.serviceConfigs.get("SSH"), 2222);
  assert.equal(r.token, r.arm.tokenFor(2222));
  assert.ok(
    r.lines.some((l) =>
      /level=INFO msg="updating the Arc service configuration to the target port;.* port=2222 configuredPort=22/
        .test(l)
    ),
    r.lines.join(""),
  );
});

Deno.test("arc start: a service configuration that cannot be read leaves the credentials as issued", async () => {
  const r = await start(2222, {
    failures: {
      getServiceConfig: { status: 403, code: "AuthorizationFailed", message: "no read" },
    },
  });
  assert.ifError(r.error);
  assert.deepEqual(r.arm.sequence(), [LIST, GET_CONFIG]);
  assert.ok(
    r.lines.some((l) => /level=DEBUG msg="cannot read the Arc service configuration/.test(l)),
  );
});

Deno.test("arc start: no right to change the port is one explained error", async () => {
  const r = await start(2222, {
    failures: {
      putServiceConfig: { status: 403, code: "AuthorizationFailed", message: "no write" },
    },
  });
  assert.deepEqual(r.arm.sequence(), [LIST, GET_CONFIG, PUT_CONFIG]);
  assert.match(
    r.error?.message ?? "",
    /^create service configuration: ARM API error \(HTTP 403\): AuthorizationFailed: no write; setting the machine's SSH port needs .*with this --port$/,
  );
});
