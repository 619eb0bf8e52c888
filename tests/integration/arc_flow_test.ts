/**
 * Arc end to end, in process: our ARM client against the fake ARM, relay-server as the Arc relay
 * (it accepts the Arc accessKey in the `ServiceBusAuthorization` header), the fake Arc agent as the
 * listener, an echo server as the machine's port.
 */
import assert from "node:assert/strict";
import { configureLogging, resetLogging } from "../../lib/observe/log.ts";
import { runArcConnect } from "../../lib/arc/connect.ts";
import { runArcPortForward } from "../../lib/arc/port_forward.ts";
import type { ArcSessionOptions } from "../../lib/arc/session.ts";
import { type ArcStack, startArcStack } from "../helpers/arc_stack.ts";
import type { FakeArmOptions } from "../helpers/fake_arm.ts";
import { echoOnce, readExactly, startEchoServer, writeAll } from "../helpers/servers.ts";

const RID =
  "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.HybridCompute/machines/vm1";
const HC = "microsoft.hybridcompute/machines/0f0e0d0c-0000-4000-8000-000000000001";
const KEY_NAME = "arc-agent";

interface Cast extends AsyncDisposable {
  arm: ArcStack["arm"];
  echo: ReturnType<typeof startEchoServer>;
  lines: string[];
  startAgent: ArcStack["startAgent"];
  agentHeaders: ArcStack["agentHeaders"];
  /** Session options for the echo server's port. */
  session(extra?: Partial<ArcSessionOptions>): ArcSessionOptions;
  /** Resolves when a log line matches `re`. */
  waitLog(re: RegExp): Promise<string>;
}

/** The machine's SSH service configuration names the echo server's port unless `arm` says else. */
async function cast(arm: Partial<FakeArmOptions> = {}, startAgent = true): Promise<Cast> {
  const lines: string[] = [];
  const logWaiters = new Set<() => void>();
  await configureLogging({
    level: "debug",
    write: (l) => {
      lines.push(l);
      for (const w of [...logWaiters]) w();
    },
  });
  const echo = startEchoServer();
  const stack = await startArcStack({
    resourceId: RID,
    hybridConnectionName: HC,
    keyName: KEY_NAME,
    arm: { serviceConfigs: { SSH: echo.port }, ...arm },
    startAgent,
  });
  return {
    arm: stack.arm,
    echo,
    lines,
    startAgent: stack.startAgent,
    agentHeaders: stack.agentHeaders,
    session: (extra) => stack.session(echo.port, extra),
    async waitLog(re) {
      for (;;) {
        const hit = lines.find((l) => re.test(l));
        if (hit) return hit;
        await new Promise<void>((resolve) => {
          const w = () => {
            logWaiters.delete(w);
            resolve();
          };
          logWaiters.add(w);
        });
      }
    },
    async [Symbol.asyncDispose]() {
      await stack[Symbol.asyncDispose]();
      await echo.close();
      await resetLogging();
    },
  };
}

/** Runs port-forward until `fn` is done, then stops it and waits for it to finish. */
async function withPortForward(
  opts: ArcSessionOptions,
  fn: (port: number) => Promise<void>,
): Promise<void> {
  const stop = new AbortController();
  const { promise: listening, resolve, reject } = Promise.withResolvers<number>();
  const run = runArcPortForward({
    ...opts,
    bind: { hostname: "127.0.0.1", port: 0 },
    keepAlive: true,
    signal: stop.signal,
    onListening: (addr) => resolve(addr.port),
  });
  run.catch(reject);
  try {
    await fn(await listening);
  } finally {
    stop.abort();
    await run.catch(() => {});
  }
}

function assertNoSecrets(c: Cast) {
  const all = c.lines.join("");
  assert.ok(!all.includes("SharedAccessSignature"), "accessKey in the logs");
  assert.ok(!all.includes(c.arm.serviceConfigurationToken), "service configuration token in logs");
}

Deno.test("arc port-forward: two concurrent connections, one ARM call", async () => {
  await using c = await cast();
  await withPortForward(c.session(), async (port) => {
    const [a, b] = await Promise.all([echoOnce(port, "first"), echoOnce(port, "second")]);
    assert.equal(a, "first");
    assert.equal(b, "second");
  });
  assert.deepEqual(c.arm.calls.map((x) => x.op), ["list", "getServiceConfig"]);
  const list = c.arm.calls[0];
  assert.equal(list.query.get("expiresin"), "10800");
  assert.equal(list.query.get("api-version"), "2023-03-15");
  assert.deepEqual(list.body, { serviceName: "SSH" });
  assert.equal(c.echo.accepted, 2);
  for (const h of c.agentHeaders()) {
    assert.equal(h["Microsoft-Guestgateway-Target"], `localhost:${c.echo.port}`);
    assert.equal(h["Service-Configuration-Token"], c.arm.tokenFor(c.echo.port));
  }
  assert.ok(c.lines.some((l) => /msg="arc port-forward listening" bind=127\.0\.0\.1:\d+ /.test(l)));
  assertNoSecrets(c);
});

Deno.test("arc: a missing endpoint is created, and relay 404s are retried until the agent registers", async () => {
  await using c = await cast({ endpointExists: false }, false);
  await withPortForward(c.session(), async (port) => {
    const reply = echoOnce(port, "after registration");
    await c.waitLog(/msg="waiting for Arc agent to register a relay listener \(expected/);
    await c.startAgent();
    assert.equal(await reply, "after registration");
  });
  assert.deepEqual(c.arm.calls.map((x) => x.op), [
    "list",
    "putEndpoint",
    "putServiceConfig",
    "list",
  ]);
  assert.deepEqual(c.arm.calls[1].body, { properties: { type: "default" } });
  assert.deepEqual(c.arm.calls[2].body, { properties: { serviceName: "SSH", port: c.echo.port } });
  assert.equal(c.arm.serviceConfigs.get("SSH"), c.echo.port);
  assert.ok(c.lines.some((l) => l.includes('msg="creating Arc HybridConnectivity configuration;')));
  assert.ok(
    c.lines.some((l) =>
      /level=INFO msg="arc relay connected" bridge_id=[A-Z2-7]{16} elapsed=\S+ attempts=\d+ lastStatus=404/
        .test(l)
    ),
  );
  assertNoSecrets(c);
});

Deno.test("arc port-forward: short-lived credentials are refetched; a failure drops one connection only", async () => {
  // Credentials valid for less than the 5-minute margin: every connection asks ARM again.
  await using c = await cast({ credentialLifetimeSec: 120 });
  await withPortForward(c.session(), async (port) => {
    assert.equal(await echoOnce(port, "a"), "a");
    c.arm.setFailure("list", { status: 400, code: "BadRequest", message: "try later" });
    await assert.rejects(echoOnce(port, "b"));
    await c.waitLog(
      /level=WARN msg="get relay credentials failed" bridge_id=\S+ error=".*HTTP 400/,
    );
    c.arm.setFailure("list", undefined);
    assert.equal(await echoOnce(port, "c"), "c");
  });
  assert.equal(c.arm.count("list"), 4);
});

Deno.test("arc: a machine configured for port 22 is pointed at --port, and the agent accepts the token", async () => {
  await using c = await cast({ serviceConfigs: { SSH: 22 } });
  // The fake agent refuses a token issued for port 22 when asked for the echo port.
  await withPortForward(c.session(), async (port) => {
    assert.equal(await echoOnce(port, "raw bytes, no envelope"), "raw bytes, no envelope");
  });
  assert.deepEqual(c.arm.calls.slice(-4).map((x) => x.op), [
    "list",
    "getServiceConfig",
    "putServiceConfig",
    "list",
  ]);
  assert.equal(c.arm.serviceConfigs.get("SSH"), c.echo.port);
  assert.deepEqual(c.agentHeaders().map((h) => h["Service-Configuration-Token"]), [
    c.arm.tokenFor(c.echo.port),
  ]);
  assertNoSecrets(c);
});

Deno.test("arc: 403 on listCredentials is explained and nothing is created", async () => {
  await using c = await cast({
    failures: {
      list: {
        status: 403,
        code: "AuthorizationFailed",
        message: "The client 'x' does not have authorization to perform action " +
          "'Microsoft.HybridConnectivity/endpoints/listCredentials/action'.",
      },
    },
  });
  const stop = new AbortController();
  await assert.rejects(
    runArcPortForward({
      ...c.session(),
      bind: { hostname: "127.0.0.1", port: 0 },
      keepAlive: false,
      signal: stop.signal,
    }),
    (err: Error & { code?: string }) => {
      assert.equal(err.code, "auth_failed");
      assert.match(
        err.message,
        /^list credentials: ARM API error \(HTTP 403\): AuthorizationFailed: /,
      );
      assert.match(err.message, /Virtual Machine Local User Login/);
      return true;
    },
  );
  assert.deepEqual(c.arm.calls.map((x) => x.op), ["list"]);
});

Deno.test("arc: a wrong resource id says so without trying to create anything", async () => {
  await using c = await cast();
  const other = RID.replace(/vm1$/, "vm-typo");
  await assert.rejects(
    runArcConnect({ ...c.session({ resourceId: other }), local: nullStream() }),
    /list credentials: ARM API error \(HTTP 404\): ResourceNotFound: .*the machine ".*vm-typo" was not found: check --resource-id/,
  );
  assert.deepEqual(c.arm.calls.map((x) => x.op), ["unknown"]);
});

Deno.test("arc: MissingSubscriptionRegistration tells how to register the provider", async () => {
  await using c = await cast({
    failures: {
      list: {
        status: 409,
        code: "MissingSubscriptionRegistration",
        message:
          "The subscription is not registered to use namespace 'Microsoft.HybridConnectivity'.",
      },
    },
  });
  await assert.rejects(
    runArcConnect({ ...c.session(), local: nullStream() }),
    /az provider register -n Microsoft\.HybridConnectivity/,
  );
});

Deno.test("arc: credentials the relay refuses end with 401 and no secret in the error", async () => {
  await using c = await cast({
    relay: {
      namespaceName: "azgnrelay-westeurope-l1",
      namespaceNameSuffix: "servicebus.windows.net",
      hybridConnectionName: HC,
      keyName: KEY_NAME,
      key: "not-the-relay-key",
    },
  });
  await assert.rejects(
    runArcConnect({ ...c.session(), local: nullStream() }),
    (err: Error & { code?: string }) => {
      assert.equal(err.code, "auth_failed");
      assert.match(err.message, /^dial arc relay: HTTP 401/);
      assert.ok(!err.message.includes("SharedAccessSignature"));
      return true;
    },
  );
  assertNoSecrets(c);
});

Deno.test("arc connect: bytes both ways, clean end on local EOF", async () => {
  await using c = await cast();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const user = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const local = await listener.accept();
  listener.close();
  const done = runArcConnect({ ...c.session(), local });
  try {
    await writeAll(user, new TextEncoder().encode("ping over arc"));
    assert.equal(new TextDecoder().decode(await readExactly(user, 13)), "ping over arc");
    await user.closeWrite();
    await done;
  } finally {
    user.close();
  }
  assert.equal(c.agentHeaders().length, 1);
});

/** A local end that is already at EOF (the tests above fail before using it). */
function nullStream() {
  return {
    read: () => Promise.resolve(null),
    write: (p: Uint8Array) => Promise.resolve(p.length),
    closeWrite: () => Promise.resolve(),
    close: () => {},
  };
}
