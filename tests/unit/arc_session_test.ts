import assert from "node:assert/strict";
import { ArcSession, type ArcSessionOptions } from "../../lib/arc/session.ts";
import { configureLogging, resetLogging } from "../../lib/observe/log.ts";
import type { WsConnectOptions } from "../../lib/ws/client.ts";
import type { WebSocketConn } from "../../lib/ws/conn.ts";
import { WsHandshakeError } from "../../lib/ws/errors.ts";

const RID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.HybridCompute/machines/vm1";
const T0 = 1_700_000_000_000;
const CONN = {} as unknown as WebSocketConn;

/**
 * ARM that answers listCredentials from a queue of statuses (200 = fresh credentials); the
 * service configuration names port 22, the sessions' port.
 */
function fakeArm(listStatuses: number[], clock: { t: number }) {
  const ops: string[] = [];
  const gates: Array<() => void> = [];
  let held = false;
  let parked = Promise.withResolvers<void>();
  const fetchFn: typeof fetch = async (input, init) => {
    const req = new Request(input, init);
    await req.text();
    const url = new URL(req.url);
    const op = req.method === "GET"
      ? "getServiceConfig"
      : req.method === "PUT"
      ? (url.pathname.includes("serviceConfigurations") ? "putServiceConfig" : "putEndpoint")
      : "list";
    ops.push(op);
    if (op === "getServiceConfig") return Response.json({ properties: { port: 22 } });
    if (op !== "list") return Response.json({});
    if (held) {
      const gate = new Promise<void>((r) => gates.push(r));
      parked.resolve();
      await gate;
    }
    const status = listStatuses.shift() ?? 200;
    if (status !== 200) {
      return Response.json({ error: { code: "ResourceNotFound", message: "endpoint" } }, {
        status,
      });
    }
    const n = ops.filter((o) => o === "list").length;
    return Response.json({
      relay: {
        namespaceName: "ns",
        namespaceNameSuffix: "servicebus.windows.net",
        hybridConnectionName: "hc",
        accessKey: `SharedAccessSignature sr=x&sig=s${n}&se=1&skn=k`,
        expiresOn: Math.floor(clock.t / 1000) + 10800,
        serviceConfigurationToken: `sct-${n}`,
      },
    });
  };
  return {
    ops,
    fetchFn,
    /** Parks the next listCredentials calls; `parked` resolves when the first one arrives. */
    hold() {
      held = true;
      parked = Promise.withResolvers<void>();
      return parked.promise;
    },
    release() {
      held = false;
      for (const g of gates.splice(0)) g();
    },
  };
}

function session(
  arm: ReturnType<typeof fakeArm>,
  clock: { t: number },
  extra: Partial<ArcSessionOptions> = {},
) {
  return new ArcSession({
    resourceId: RID,
    port: 22,
    service: "SSH",
    armEndpoint: new URL("https://arm.example"),
    credential: {
      getToken: () => Promise.resolve({ token: "t", expiresOnTimestamp: clock.t + 3600e3 }),
    },
    fetch: arm.fetchFn,
    armRetryDelaysMs: [],
    dialTiming: { backoffMs: [0] },
    now: () => clock.t,
    ...extra,
  });
}

Deno.test("credentials are reused until 5 minutes before expiresOn, then refreshed once", async () => {
  const clock = { t: T0 };
  const arm = fakeArm([], clock);
  const s = session(arm, clock);
  await s.start();
  const first = await s.credentials();
  clock.t = T0 + 10800e3 - 5 * 60e3 - 1000;
  assert.equal(await s.credentials(), first);
  assert.deepEqual(arm.ops, ["list", "getServiceConfig"]);
  clock.t += 1000;
  const parked = arm.hold();
  const many = Promise.all(Array.from({ length: 8 }, () => s.credentials()));
  await parked;
  arm.release();
  const fresh = await many;
  assert.deepEqual(arm.ops, ["list", "getServiceConfig", "list"]);
  assert.ok(fresh.every((c) => c === fresh[0] && c.serviceConfigurationToken === "sct-2"));
});

Deno.test("a 412 from listCredentials creates the service configuration only, then explains only the next dial", async () => {
  const clock = { t: T0 };
  const arm = fakeArm([412], clock);
  const lines: string[] = [];
  await configureLogging({ level: "info", write: (l) => lines.push(l) });
  try {
    const attempts: WsConnectOptions[] = [];
    const outcomes: Array<number | "ok"> = [404, "ok", 404, "ok"];
    const connect = (_url: string, opts: WsConnectOptions) => {
      attempts.push(opts);
      const next = outcomes.shift();
      return next === "ok" ? Promise.resolve(CONN) : Promise.reject(
        new WsHandshakeError("HTTP 404", {
          status: next!,
          statusText: "Not Found",
          headers: new Headers(),
          body: "",
        }),
      );
    };
    const s = session(arm, clock, { connect });
    await s.start();
    assert.deepEqual(arm.ops, ["list", "putServiceConfig", "list"]);
    await s.dial(await s.credentials());
    await s.dial(await s.credentials());
    const waiting = lines.filter((l) => l.includes("waiting for Arc agent to register"));
    assert.equal(waiting.length, 1, lines.join(""));
  } finally {
    await resetLogging();
  }
});

Deno.test("credentials the relay refuses are dropped, so the next dial asks ARM again", async () => {
  const clock = { t: T0 };
  const arm = fakeArm([], clock);
  const outcomes: Array<number | "ok"> = [401, "ok"];
  const connect = () => {
    const next = outcomes.shift();
    return next === "ok" ? Promise.resolve(CONN) : Promise.reject(
      new WsHandshakeError("HTTP 401", {
        status: 401,
        statusText: "Unauthorized",
        headers: new Headers(),
        body: "",
      }),
    );
  };
  const s = session(arm, clock, { connect });
  await s.start();
  await assert.rejects(s.dial(await s.credentials()), { code: "auth_failed" });
  assert.equal(await s.dial(await s.credentials()), CONN);
  assert.deepEqual(arm.ops, ["list", "getServiceConfig", "list"]);
});

Deno.test("other listCredentials failures end start() without creating anything", async () => {
  const clock = { t: T0 };
  const arm = fakeArm([400], clock);
  await assert.rejects(
    session(arm, clock).start(),
    { message: /^list credentials: ARM API error \(HTTP 400\)/ },
  );
  assert.deepEqual(arm.ops, ["list"]);
});
