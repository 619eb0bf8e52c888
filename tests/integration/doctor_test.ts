/**
 * `runRelayDoctor` against relay-server (lib/server) on loopback with a real listener: every line
 * of the report, for a good key, a wrong key, a Send-only key, no listener, an allowed and a
 * refused target, and a relay name that does not resolve; `runArcDoctor` against the fake ARM.
 */
import assert from "node:assert/strict";
import { runListener } from "../../lib/listener/service.ts";
import { getLogger } from "../../lib/observe/log.ts";
import { runRelayDoctor } from "../../lib/doctor/relay.ts";
import { parseRelayEndpoint, type RelayEndpoint } from "../../lib/relay/endpoint.ts";
import { SasTokenProvider } from "../../lib/relay/token.ts";
import { type RelayServer, startRelayServer } from "../../lib/server/mod.ts";
import { parseAllowlist } from "../../lib/tunnel/allowlist.ts";
import { startEchoServer } from "../helpers/servers.ts";
import { runArcDoctor } from "../../lib/doctor/arc.ts";
import { encodeBase64Url } from "../../lib/crypto/base64.ts";
import { type FakeArm, type FakeArmOptions, startFakeArm } from "../helpers/fake_arm.ts";
import { captureLogs } from "../helpers/logs.ts";

const KEY = "doctor-full-key";
const SEND_KEY = "doctor-send-key";
const HC = "hc";
const LISTENER_ID = "DOCTORTESTLSNR01";

interface World extends AsyncDisposable {
  server: RelayServer;
  endpoint: RelayEndpoint;
  port: number;
}

async function relay(): Promise<World> {
  const logs = await captureLogs();
  const server = await startRelayServer({
    bind: "127.0.0.1:0",
    policies: [
      { name: "root", key: KEY, rights: ["Listen", "Send", "Manage"] },
      { name: "send-only", key: SEND_KEY, rights: ["Send"] },
    ],
  });
  const endpoint = parseRelayEndpoint(server.url);
  const port = Number(new URL(server.url).port);
  return {
    server,
    endpoint,
    port,
    async [Symbol.asyncDispose]() {
      await server.close();
      await logs.stop();
    },
  };
}

/** A relay-listener on `w` allowing only `allow` (every target when empty). */
async function listener(w: World, allow: string[] = []): Promise<AsyncDisposable> {
  const ac = new AbortController();
  const up = Promise.withResolvers<void>();
  const running = runListener({
    endpoint: w.endpoint,
    entity: HC,
    tokens: new SasTokenProvider("root", KEY),
    allowlist: parseAllowlist(allow),
    listenerId: LISTENER_ID,
    signal: ac.signal,
    onConnectedChange: (isUp) => isUp && up.resolve(),
    handler: { pingIntervalMs: 0 },
  });
  await up.promise;
  return {
    async [Symbol.asyncDispose]() {
      ac.abort();
      await running;
    },
  };
}

async function doctor(
  endpoint: RelayEndpoint,
  opts: { keyName?: string; key?: string; target?: string; skipListen?: boolean } = {},
): Promise<{ ok: boolean; lines: string[] }> {
  const lines: string[] = [];
  const ok = await runRelayDoctor({
    relay: {
      endpoint,
      entity: HC,
      tokens: new SasTokenProvider(opts.keyName ?? "root", opts.key ?? KEY),
    },
    timeoutMs: 5000,
    skipListen: opts.skipListen,
    target: opts.target,
    write: (l) => lines.push(l),
    logger: getLogger(),
    proxy: null,
  });
  return { ok, lines };
}

const network = (port: number) => [
  "✔ relay name resolves: 127.0.0.1 is an IP address, nothing to resolve",
  `✔ TCP to relay: connected to 127.0.0.1:${port}`,
  "✔ TLS to relay: plain ws:// (local relay), TLS skipped",
];
const NO_LISTENER = "HTTP 404 Endpoint does not exist: no listener is connected";

Deno.test("doctor: good key with a listener up: every check passes", async () => {
  await using w = await relay();
  await using _l = await listener(w);
  const r = await doctor(w.endpoint);
  assert.deepEqual(r.lines, [
    ...network(w.port),
    '✔ credential and token: SAS key "root" (AZTUNNEL_KEY_NAME), token valid for 1h0m0s',
    "✔ token accepted for Send: the relay took the sender dial (HTTP 101)",
    "✔ token accepted for Listen: control channel opened and closed",
    `✔ listener online: a listener (listener_id ${LISTENER_ID}) answered the probe`,
  ]);
  assert.equal(r.ok, true);
});

Deno.test("doctor: a wrong key fails Send and Listen with the fix; the listener check is skipped", async () => {
  await using w = await relay();
  await using _l = await listener(w);
  const r = await doctor(w.endpoint, { key: "not-the-key" });
  const fix = "fix: AZTUNNEL_KEY_NAME/AZTUNNEL_KEY do not match a policy of the namespace or the " +
    "hybrid connection: copy the key name and the key again";
  assert.deepEqual(r.lines.slice(4), [
    `✖ token accepted for Send: the relay refused the token (HTTP 401 Unauthorized: invalid signature); ${fix}`,
    `✖ token accepted for Listen: the relay refused the token (HTTP 401 Unauthorized: invalid signature); ${fix}`,
    '- listener online: skipped (needs "token accepted for Send")',
  ]);
  assert.equal(r.ok, false);
});

Deno.test("doctor: a Send-only key passes Send and fails Listen, unless --skip-listen", async () => {
  await using w = await relay();
  await using _l = await listener(w);
  const r = await doctor(w.endpoint, { keyName: "send-only", key: SEND_KEY });
  assert.deepEqual(r.lines.slice(3), [
    '✔ credential and token: SAS key "send-only" (AZTUNNEL_KEY_NAME), token valid for 1h0m0s',
    "✔ token accepted for Send: the relay took the sender dial (HTTP 101)",
    '✖ token accepted for Listen: the relay refused the token (HTTP 403 Forbidden: policy "send-only" lacks the Listen right); ' +
    "fix: the key lacks Listen: use a policy that grants Listen, or pass --skip-listen where only senders run",
    `✔ listener online: a listener (listener_id ${LISTENER_ID}) answered the probe`,
  ]);
  assert.equal(r.ok, false);

  const skipped = await doctor(w.endpoint, {
    keyName: "send-only",
    key: SEND_KEY,
    skipListen: true,
  });
  assert.equal(skipped.lines[5], "- token accepted for Listen: skipped (--skip-listen)");
  assert.equal(skipped.ok, true);
});

Deno.test("doctor: no listener: Send still passes on the 404, listener online fails", async () => {
  await using w = await relay();
  const r = await doctor(w.endpoint);
  assert.deepEqual(r.lines.slice(4), [
    `✔ token accepted for Send: the relay checked the token, then answered ${NO_LISTENER}`,
    "✔ token accepted for Listen: control channel opened and closed",
    `✖ listener online: no listener is connected to "hc" (${NO_LISTENER}); ` +
    "fix: run aztunnel relay-listener with --hyco hc and the same --relay, and look for control_started in its log",
  ]);
  assert.equal(r.ok, false);
});

Deno.test("doctor --target: allowed and reachable, then not on the allowlist", async () => {
  await using echo = startEchoServer();
  const target = `127.0.0.1:${echo.port}`;
  {
    await using w = await relay();
    await using _l = await listener(w, [target]);
    const r = await doctor(w.endpoint, { target });
    assert.equal(
      r.lines.at(-1),
      `✔ target allowed and reachable: the listener connected to ${target}`,
    );
    assert.equal(r.ok, true);
  }
  await using w = await relay();
  await using _l = await listener(w, ["10.0.0.0/8:*"]);
  const r = await doctor(w.endpoint, { target });
  assert.equal(
    r.lines.at(-2),
    `✔ listener online: a listener (listener_id ${LISTENER_ID}) answered the probe`,
  );
  assert.equal(
    r.lines.at(-1),
    `✖ target allowed and reachable: the listener refused ${target}: target not allowed (not_allowed); ` +
      `fix: add ${target} (or a pattern that covers it) to the listener's --allow list`,
  );
  assert.equal(r.ok, false);
});

Deno.test("doctor --target: a closed port is reported with the listener's code", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const target = `127.0.0.1:${closed.addr.port}`;
  closed.close();
  await using w = await relay();
  await using _l = await listener(w);
  const r = await doctor(w.endpoint, { target });
  assert.equal(
    r.lines.at(-1),
    `✖ target allowed and reachable: the listener could not connect to ${target}: connection failed (connection_refused); ` +
      `fix: check that ${target} accepts connections from the listener's machine (name, port, firewall)`,
  );
});

Deno.test("doctor: a relay name that does not resolve fails first; the rest is skipped", async () => {
  const r = await doctor(parseRelayEndpoint("wss://doctor-test.invalid"));
  assert.deepEqual(r.lines, [
    "✖ relay name resolves: doctor-test.invalid does not resolve (ENOTFOUND); fix: check --relay " +
    "(a bare namespace name gets --relay-suffix, default .servicebus.windows.net) and this " +
    "machine's DNS (a private endpoint needs its privatelink zone)",
    '- TCP to relay: skipped (needs "relay name resolves")',
    '- TLS to relay: skipped (needs "TCP to relay")',
    '✔ credential and token: SAS key "root" (AZTUNNEL_KEY_NAME), token valid for 1h0m0s',
    '- token accepted for Send: skipped (needs "TLS to relay")',
    '- token accepted for Listen: skipped (needs "TLS to relay")',
    '- listener online: skipped (needs "token accepted for Send")',
  ]);
  assert.equal(r.ok, false);
});

const RID =
  "/subscriptions/00000000-0000-0000-0000-000000000012/resourceGroups/rg/providers/Microsoft.HybridCompute/machines/doc-vm";

/** An ARM "JWT" naming its user; the fake ARM does not verify it. */
const armCredential = {
  getToken: () =>
    Promise.resolve({
      token: `e30.${encodeBase64Url(new TextEncoder().encode('{"upn":"dev@example.com"}'))}.sig`,
      expiresOnTimestamp: Date.now() + 3600e3,
    }),
};

async function arcDoctor(
  state: Partial<FakeArmOptions>,
  port = 22,
  inspect?: (arm: FakeArm) => void,
): Promise<{ ok: boolean; lines: string[] }> {
  await using arm = Object.assign(
    startFakeArm({
      resourceId: RID,
      relay: {
        namespaceName: "azgnrelay-westeurope-l1",
        namespaceNameSuffix: "servicebus.windows.net",
        hybridConnectionName: "microsoft.hybridcompute/machines/doc",
        keyName: "k",
        key: "relay-key",
      },
      ...state,
    }),
    { [Symbol.asyncDispose]: () => arm.close() },
  );
  const lines: string[] = [];
  const ok = await runArcDoctor({
    resourceId: RID,
    service: "SSH",
    port,
    armEndpoint: new URL(arm.url),
    credential: armCredential,
    timeoutMs: 5000,
    write: (l) => lines.push(l),
  });
  // Read-only: doctor never creates what is missing.
  assert.deepEqual(arm.calls.filter((c) => c.method === "PUT"), []);
  inspect?.(arm);
  return { ok, lines: lines.map((l) => l.replace(arm.url, "ARM")) };
}

const ARC_HEAD = [
  "✔ ARM token: Entra ID (DefaultAzureCredential), token for user dev@example.com",
];
const PROVIDER =
  "✔ resource provider registered: Microsoft.HybridConnectivity is Registered in subscription 00000000-0000-0000-0000-000000000012";

Deno.test("doctor --resource-id: endpoint, service configuration and credentials in place", async () => {
  const r = await arcDoctor({});
  assert.equal(r.lines.length, 6);
  assert.deepEqual(r.lines.slice(0, 5), [
    ...ARC_HEAD,
    "✔ ARM reachable: ARM answered",
    PROVIDER,
    '✔ HybridConnectivity endpoint: endpoint "default" exists',
    "✔ service configuration: SSH → port 22",
  ]);
  assert.match(
    r.lines[5],
    /^✔ relay credentials listed: relay azgnrelay-westeurope-l1\.servicebus\.windows\.net, hybrid connection microsoft\.hybridcompute\/machines\/doc, valid until \d{4}-\d\d-\d\dT/,
  );
  assert.equal(r.ok, true);
});

Deno.test("doctor --resource-id: 412 (no service configuration) names az ssh arc and --port", async () => {
  const r = await arcDoctor({ serviceConfigs: {} }, 2222);
  assert.deepEqual(r.lines, [
    ...ARC_HEAD,
    "✔ ARM reachable: ARM answered (HTTP 412)",
    PROVIDER,
    '✔ HybridConnectivity endpoint: endpoint "default" exists',
    "✖ service configuration: the endpoint has no SSH service configuration; fix: connect once " +
    `with \`az ssh arc --resource-id ${RID} --port 2222\` (or aztunnel arc connect --port 2222), which creates it`,
    '- relay credentials listed: skipped (needs "service configuration")',
  ]);
  assert.equal(r.ok, false);
});

Deno.test("doctor --resource-id: 404 (no endpoint), and a configuration for another port", async () => {
  const missing = await arcDoctor({ endpointExists: false });
  assert.deepEqual(missing.lines.slice(1, 6), [
    "✔ ARM reachable: ARM answered (HTTP 404)",
    PROVIDER,
    '✖ HybridConnectivity endpoint: the machine has no endpoint "default" (HTTP 404); fix: ' +
    `connect once with \`az ssh arc --resource-id ${RID}\` (or aztunnel arc connect), which creates it`,
    '- service configuration: skipped (needs "HybridConnectivity endpoint")',
    '- relay credentials listed: skipped (needs "HybridConnectivity endpoint")',
  ]);
  assert.equal(missing.ok, false);

  const other = await arcDoctor({ serviceConfigs: { SSH: 2222 } }, 22);
  assert.equal(
    other.lines[4],
    "✖ service configuration: SSH is configured for port 2222, not 22; fix: pass --port 2222, or " +
      `connect once with \`az ssh arc --resource-id ${RID} --port 22\` (or aztunnel arc connect --port 22) to point it there`,
  );
  assert.equal(other.ok, false);
});

Deno.test("doctor --resource-id: the provider GET reads the machine's subscription, once", async () => {
  let seen: string[] = [];
  const r = await arcDoctor({}, 22, (arm) => {
    seen = arm.calls.filter((c) => c.op === "getProvider").map((c) =>
      `${c.method} ${c.path}?api-version=${c.query.get("api-version")}`
    );
  });
  assert.equal(r.lines[2], PROVIDER);
  assert.deepEqual(seen, [
    "GET /subscriptions/00000000-0000-0000-0000-000000000012/providers/Microsoft.HybridConnectivity?api-version=2021-04-01",
  ]);
});

Deno.test("doctor --resource-id: an unregistered provider fails and names az provider register", async () => {
  for (const state of ["NotRegistered", "Registering"]) {
    const r = await arcDoctor({ providerState: state });
    assert.equal(
      r.lines[2],
      `✖ resource provider registered: Microsoft.HybridConnectivity is ${state} in subscription ` +
        "00000000-0000-0000-0000-000000000012; fix: az provider register --namespace Microsoft.HybridConnectivity",
    );
    assert.equal(r.lines[3], '✔ HybridConnectivity endpoint: endpoint "default" exists');
    assert.equal(r.ok, false);
  }
});

Deno.test("doctor --resource-id: a 403 on the provider GET is skipped, not a failure", async () => {
  const r = await arcDoctor({
    failures: {
      getProvider: {
        status: 403,
        code: "AuthorizationFailed",
        message:
          "does not have authorization to perform action 'Microsoft.Resources/subscriptions/providers/read'",
      },
    },
  });
  assert.equal(
    r.lines[2],
    "- resource provider registered: skipped (ARM refused reading the provider (HTTP 403 " +
      "AuthorizationFailed): the identity may lack read access at subscription scope; a missing " +
      "registration shows below)",
  );
  assert.equal(r.lines.length, 6);
  assert.equal(r.ok, true);
});

Deno.test("doctor --resource-id: ARM unreachable skips the provider check", async () => {
  const lines: string[] = [];
  const ok = await runArcDoctor({
    resourceId: RID,
    service: "SSH",
    port: 22,
    armEndpoint: new URL("http://127.0.0.1:1"),
    credential: armCredential,
    timeoutMs: 5000,
    write: (l) => lines.push(l),
  });
  assert.match(lines[1], /^✖ ARM reachable: /);
  assert.equal(lines[2], '- resource provider registered: skipped (needs "ARM reachable")');
  assert.equal(ok, false);
});
