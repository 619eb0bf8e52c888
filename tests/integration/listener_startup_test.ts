/**
 * The listener's start-up against relay-server (issue 11): refused before it was ever connected
 * (wrong key, a Send-only key, no such hybrid connection) it stops at once with one line naming the
 * relay, the hyco and the fix; once connected it retries whatever the relay answers; and it says
 * `listener ready` once, with what it serves and how it authenticated.
 */
import assert from "node:assert/strict";
import { type ListenerOptions, runListener } from "../../lib/listener/service.ts";
import { ListenerRefusedError } from "../../lib/listener/refusal.ts";
import { getLogger } from "../../lib/observe/log.ts";
import { parseRelayEndpoint } from "../../lib/relay/endpoint.ts";
import { SasTokenProvider } from "../../lib/relay/token.ts";
import { type RelayServer, startRelayServer } from "../../lib/server/mod.ts";
import type { SasPolicy } from "../../lib/server/policy.ts";
import { parseAllowlist } from "../../lib/tunnel/allowlist.ts";
import { withDeadline } from "../helpers/proc.ts";
import { captureLogs } from "../helpers/logs.ts";

const NAME = "listen-policy";
const KEY = "bGlzdGVuZXItc3RhcnR1cC10ZXN0LWtleQ==";
const HYCO = "hc";
const ALL: SasPolicy = { name: NAME, key: KEY, rights: ["Listen", "Send", "Manage"] };

/** relay-server on loopback (default: any name, one policy with every right). */
async function relay(
  opts: { policies?: SasPolicy[]; hycos?: string[]; bind?: string } = {},
): Promise<RelayServer & AsyncDisposable> {
  const server = await startRelayServer({
    bind: opts.bind ?? "127.0.0.1:0",
    policies: opts.policies ?? [ALL],
    hycos: opts.hycos,
    logger: getLogger({ side: "relay" }),
  });
  return Object.assign(server, { [Symbol.asyncDispose]: () => server.close() });
}

/** A listener on `server` signing with `key` (default the right one); stop it with `stop()`. */
function listen(server: RelayServer, o: Partial<ListenerOptions> & { key?: string } = {}) {
  const ac = new AbortController();
  const ups: boolean[] = [];
  const running = runListener({
    endpoint: parseRelayEndpoint(server.url),
    entity: HYCO,
    tokens: new SasTokenProvider(NAME, o.key ?? KEY),
    auth: { kind: "sas", keyName: NAME },
    allowlist: null,
    signal: ac.signal,
    logger: getLogger({ side: "listener" }),
    onConnectedChange: (up) => ups.push(up),
    controlChannel: { reconnectBaseMs: 20 },
    ...o,
  });
  return {
    running,
    ups,
    stop: () => {
      ac.abort(new DOMException("shutdown requested", "AbortError"));
      return running;
    },
  };
}

/** The refusal `running` stops with, within 5 s. */
async function refusal(running: Promise<void>): Promise<ListenerRefusedError> {
  const err = await withDeadline(running.then(() => null, (e) => e), 5000, "the refusal");
  assert.ok(err instanceof ListenerRefusedError, String(err));
  return err;
}

Deno.test("listener: a wrong key on the first attempt stops it with one line naming relay, hyco and fix", async () => {
  await using logs = await captureLogs();
  await using server = await relay();
  const l = listen(server, { key: "d3Jvbmcta2V5" });
  const err = await refusal(l.running);
  assert.equal(err.code, "auth_failed");
  assert.match(err.message, /^[^\n]+$/, "one line");
  assert.equal(
    err.message,
    `relay ${server.url} refused the listener for hybrid connection ${HYCO} (HTTP 401 ` +
      "Unauthorized: invalid signature): check AZTUNNEL_KEY_NAME/AZTUNNEL_KEY or the " +
      "Entra identity's role (Azure Relay Listener)",
  );
  assert.equal(logs.count(/listener ready/), 0);
  assert.equal(logs.count(/reconnecting/), 0, "no retry once refused");
  assert.deepEqual(l.ups, []);
});

Deno.test("listener: a Send-only key stops it with the 403 line (the key lacks Listen)", async () => {
  await using _logs = await captureLogs();
  await using server = await relay({ policies: [{ name: NAME, key: KEY, rights: ["Send"] }] });
  const err = await refusal(listen(server).running);
  assert.equal(err.code, "auth_failed");
  assert.equal(
    err.message,
    `relay ${server.url} refused the listener for hybrid connection ${HYCO} (HTTP 403 ` +
      `Forbidden: policy "${NAME}" lacks the Listen right): the key/role lacks Listen: use a ` +
      "SAS policy with the Listen right or give the identity the Azure Relay Listener role",
  );
});

Deno.test("listener: an unknown hybrid connection stops it with the 404 line", async () => {
  await using _logs = await captureLogs();
  await using server = await relay({ hycos: ["other"] });
  const err = await refusal(listen(server).running);
  assert.equal(err.code, "hyco_not_found");
  assert.equal(
    err.message,
    `relay ${server.url} answered HTTP 404 Endpoint does not exist: hybrid connection ${HYCO} ` +
      `does not exist in ${server.url}: start relay-server with --hyco ${HYCO} (or without ` +
      "--hyco, to serve any name)",
  );
});

Deno.test("listener: a relay that is down at first is retried, and a refusal after that still stops it", async () => {
  await using logs = await captureLogs();
  const first = await relay();
  const bind = `127.0.0.1:${first.addr.port}`;
  await first.close();
  const l = listen(first, { key: "d3Jvbmcta2V5" });
  const warn = await logs.waitFor(/control channel disconnected, reconnecting/);
  assert.ok(warn.includes(`relay_url=${first.url} hyco=${HYCO} `), warn);
  await using _server = await relay({ bind });
  const err = await refusal(l.running);
  assert.equal(err.code, "auth_failed");
});

Deno.test("listener: once connected it keeps retrying through a relay restart and a refusal", async () => {
  await using logs = await captureLogs();
  let server = await relay();
  const bind = `127.0.0.1:${server.addr.port}`;
  const l = listen(server);
  try {
    await logs.waitFor(/msg="listener ready"/);
    await server.close();
    await logs.waitFor([/control channel disconnected, reconnecting/, /error="dial control: /]);
    // Back with another key: refused, and retried since the listener has been connected.
    server = await relay({ bind, policies: [{ ...ALL, key: "YW5vdGhlci1rZXk=" }] });
    const refused = [/control channel disconnected, reconnecting/, /HTTP 401/];
    const warn = await logs.waitFor(refused);
    assert.ok(warn.includes(`relay_url=${server.url} hyco=${HYCO} `), warn);
    await logs.waitFor(refused, 20_000, 2);
    await server.close();
    server = await relay({ bind });
    await logs.waitFor(/msg=control_started/, 20_000, 2);
    assert.deepEqual(l.ups, [true, false, true]);
    assert.equal(logs.count(/listener ready/), 1, "ready is said once");
  } finally {
    await l.stop();
    await server.close();
  }
});

Deno.test("listener: `listener ready` names relay, hyco, allowlist, limits and auth once the channel is up", async () => {
  await using logs = await captureLogs();
  await using server = await relay();
  const l = listen(server, {
    allowlist: parseAllowlist(["10.0.0.0/8:*", "127.0.0.1:22", "*.corp.example:443"]),
    maxConnections: 7,
    maxWarmLegs: 3,
  });
  try {
    const line = await logs.waitFor(/msg="listener ready"/);
    const started = logs.lines.findIndex((x) => /msg=control_started/.test(x));
    assert.ok(started >= 0 && started < logs.lines.indexOf(line), "after control_started");
    assert.match(line, /level=INFO/);
    assert.ok(
      line.trimEnd().endsWith(
        ` relay_url=${server.url} hyco=${HYCO} ` +
          'allow="3 entries: 10.0.0.0/8:*, 127.0.0.1:22, *.corp.example:443" ' +
          `max_connections=7 max_warm_legs=3 auth=sas key_name=${NAME}`,
      ),
      line,
    );
    assert.match(line, /msg="listener ready" side=listener listener_id=\w+ relay_url=/);
  } finally {
    await l.stop();
  }
});

Deno.test("listener: `listener ready` without an allowlist or limits, with Entra", async () => {
  await using logs = await captureLogs();
  await using server = await relay();
  const l = listen(server, { auth: { kind: "entra" }, maxWarmLegs: 0 });
  try {
    const line = await logs.waitFor(/msg="listener ready"/);
    assert.ok(
      line.trimEnd().endsWith(
        'allow="any target (*)" max_connections=unlimited max_warm_legs=0 auth=entra',
      ),
      line,
    );
  } finally {
    await l.stop();
  }
});
