/**
 * lib/relay against lib/server's relay-server: the client and the local relay must agree on every
 * part of the Hybrid Connections protocol the tunnels use.
 */
import assert from "node:assert/strict";
import { type RelayServer, startRelayServer } from "../../lib/server/mod.ts";
import { parseRelayEndpoint, type RelayEndpoint } from "../../lib/relay/endpoint.ts";
import {
  type AcceptContext,
  type AcceptMessage,
  type ControlChannelOptions,
  runControlChannel,
} from "../../lib/relay/control_channel.ts";
import { dialRelay } from "../../lib/relay/dial.ts";
import { RelayDialError } from "../../lib/relay/dial_error.ts";
import { acceptRendezvous, rejectRendezvous } from "../../lib/relay/rendezvous.ts";
import { SasTokenProvider, type Token, type TokenProvider } from "../../lib/relay/token.ts";
import { getLogger } from "../../lib/observe/log.ts";
import type { WebSocketConn } from "../../lib/ws/conn.ts";
import { deferred, within } from "../helpers/fake_relay.ts";
import { captureLogs } from "../helpers/logs.ts";

const KEY = "relay-server-test-key";
const HC = "hyco";
const tokens = (key = KEY) => new SasTokenProvider("root", key);

async function relayServer(port = 0): Promise<RelayServer & AsyncDisposable> {
  const server = await startRelayServer({
    bind: `127.0.0.1:${port}`,
    policies: [{ name: "root", key: KEY, rights: ["Listen", "Send", "Manage"] }],
  });
  return Object.assign(server, { [Symbol.asyncDispose]: () => server.close() });
}

/** A listener whose accepts are handled by `onAccept` (default: accept and echo with a prefix). */
function listener(
  endpoint: RelayEndpoint,
  extra: Partial<ControlChannelOptions> = {},
): { done: Promise<void>; stop(): Promise<void> } & AsyncDisposable {
  const ac = new AbortController();
  const tasks = new Set<Promise<void>>();
  const echo = (a: AcceptMessage, ctx: AcceptContext) => {
    const t = (async () => {
      const conn = await acceptRendezvous(a.address, {
        logger: ctx.logger,
        signal: ctx.sessionSignal,
      });
      await conn.send("hello from listener");
      for (let m = await conn.receive(); m; m = await conn.receive()) {
        await conn.send(m.type === "text" ? `listener:${m.data}` : m.data);
      }
      await conn.close();
    })().catch(() => {});
    tasks.add(t);
    t.finally(() => tasks.delete(t));
  };
  const done = runControlChannel({
    endpoint,
    entity: HC,
    tokens: tokens(),
    logger: getLogger({ listener_id: "L" }),
    signal: ac.signal,
    onAccept: echo,
    reconnectBaseMs: 20,
    reconnectMaxMs: 200,
    ...extra,
  });
  const stop = async () => {
    ac.abort();
    await within(done, 8000, "listener stop");
    await Promise.all([...tasks]);
  };
  return { done, stop, [Symbol.asyncDispose]: stop };
}

async function talk(conn: WebSocketConn): Promise<void> {
  assert.deepEqual(await within(conn.receive(), 5000, "greeting"), {
    type: "text",
    data: "hello from listener",
  });
  await conn.send("ping?");
  assert.deepEqual(await within(conn.receive(), 5000, "echo"), {
    type: "text",
    data: "listener:ping?",
  });
  await conn.send(new Uint8Array([1, 2, 3]));
  assert.deepEqual(await within(conn.receive(), 5000, "binary echo"), {
    type: "binary",
    data: new Uint8Array([1, 2, 3]),
  });
  await conn.close();
}

const endpointOf = (s: RelayServer) => parseRelayEndpoint(s.url);

Deno.test("listener and sender exchange messages both ways through relay-server", async () => {
  await using logs = await captureLogs();
  await using server = await relayServer();
  const ep = endpointOf(server);
  await using _l = listener(ep);
  await logs.waitFor(/msg=control_started/);
  const conn = await dialRelay({ endpoint: ep, entity: HC, tokens: tokens() });
  await talk(conn);
  await logs.waitFor([/msg=accept_attempted/, /accept_id=[A-Z2-7]{16}/]);
  await logs.waitFor([/msg=accept_ok/, /control_session_id=[A-Z2-7]{16}/]);
});

Deno.test("relay-server refuses a bad key with 401 and the sender does not retry", async () => {
  await using logs = await captureLogs();
  await using server = await relayServer();
  await assert.rejects(
    dialRelay({
      endpoint: endpointOf(server),
      entity: HC,
      tokens: tokens("wrong-key"),
      retryBaseMs: 10,
    }),
    (err: unknown) => {
      assert.ok(err instanceof RelayDialError);
      assert.equal(err.code, "auth_failed");
      assert.equal(err.status, 401);
      assert.match(
        err.message,
        /^relay refused the credentials \(HTTP 401\): check AZTUNNEL_KEY_NAME/,
      );
      return true;
    },
  );
  assert.equal(logs.count(/retrying/), 0);
  for (const l of logs.lines) assert.doesNotMatch(l, /wrong-key|sb-hc-token=(?!REDACTED)/);
});

Deno.test("a sender waiting for a listener retries 404 and connects once one appears", async () => {
  await using logs = await captureLogs();
  await using server = await relayServer();
  const ep = endpointOf(server);
  const dial = dialRelay({
    endpoint: ep,
    entity: HC,
    tokens: tokens(),
    retryBaseMs: 30,
    retryMaxMs: 60,
  });
  await logs.waitFor([/relay dial failed \(retrying\)/, /status=404/]);
  await using _l = listener(ep);
  await talk(await dial);
});

Deno.test("a listener's rejection reaches the sender with its status", async () => {
  await using logs = await captureLogs();
  await using server = await relayServer();
  const ep = endpointOf(server);
  const rejected = deferred();
  await using _l = listener(ep, {
    onAccept: (a, ctx) => {
      rejectRendezvous(a.address, 418, "Teapot says no", { signal: ctx.sessionSignal })
        .then(() => rejected.resolve(), rejected.reject);
    },
  });
  await logs.waitFor(/msg=control_started/);
  await assert.rejects(
    dialRelay({ endpoint: ep, entity: HC, tokens: tokens() }),
    (err: unknown) => {
      assert.ok(err instanceof RelayDialError);
      assert.equal(err.code, "rejected");
      assert.equal(err.status, 418);
      assert.equal(err.statusText, "Teapot says no");
      return true;
    },
  );
  await within(rejected.promise, 5000, "410 for the listener");
});

/** SAS tokens (1 h on the wire) that the client believes expire after `lifetimeMs`. */
function shortLived(lifetimeMs: number, key = () => KEY): TokenProvider {
  return {
    kind: "sas",
    async getToken(uri: string, signal?: AbortSignal): Promise<Token> {
      const t = await tokens(key()).getToken(uri, signal);
      return { token: t.token, expiresAt: Date.now() + lifetimeMs };
    },
  };
}

Deno.test("renewToken is accepted by relay-server; a bad one gets the channel closed", async () => {
  await using logs = await captureLogs();
  await using server = await relayServer();
  const ep = endpointOf(server);
  let key = KEY;
  await using _l = listener(ep, { tokens: shortLived(300, () => key), renewBeforeMs: 200 });
  await logs.waitFor([/msg="token renewed"/]);
  await logs.waitFor([/msg=renew_ok/]);
  assert.equal(logs.count(/msg=control_ended/), 0);
  await talk(await dialRelay({ endpoint: ep, entity: HC, tokens: tokens() }));

  key = "not-the-key";
  const ended = await logs.waitFor([/msg=control_ended/, /reason=read_failed/]);
  assert.match(ended, /1008/);
  await logs.waitFor(/control channel disconnected, reconnecting/);
});

Deno.test("the listener comes back after relay-server restarts on the same port", async () => {
  await using logs = await captureLogs();
  const first = await relayServer();
  const port = first.addr.port;
  const ep = endpointOf(first);
  await using _l = listener(ep);
  await logs.waitFor(/msg=control_started/);
  await first.close();
  await logs.waitFor([/msg=control_ended/, /reason=read_failed/]);
  await using second = await relayServer(port);
  await logs.waitFor(/msg=control_started/, 5000, 2);
  await talk(await dialRelay({ endpoint: endpointOf(second), entity: HC, tokens: tokens() }));
});

Deno.test("relay-server refuses a 26th listener", async () => {
  await using logs = await captureLogs();
  await using server = await relayServer();
  const ep = endpointOf(server);
  const listeners = Array.from({ length: 25 }, () => listener(ep));
  try {
    // The relay registers a listener before its 101, so control_started means registered.
    await logs.waitFor(/msg=control_started/, 5000, 25);
    assert.equal(server.stats().listeners[HC], 25);
    await using _26 = listener(ep);
    const ended = await logs.waitFor([/msg=control_ended/, /reason=dial_failed/]);
    assert.match(ended, /HTTP 403/);
    assert.match(ended, /MaximumListenersPerEndpoint/);
    assert.equal(logs.count(/reason=auth_failed/), 0);
  } finally {
    await Promise.all(listeners.map((l) => l.stop()));
  }
});

Deno.test("relay-server refuses a second dial of the same accept address", async () => {
  await using logs = await captureLogs();
  await using server = await relayServer();
  const ep = endpointOf(server);
  const reuse = deferred<unknown>();
  await using _l = listener(ep, {
    onAccept: (a, ctx) => {
      (async () => {
        const conn = await acceptRendezvous(a.address, { logger: ctx.logger });
        try {
          await acceptRendezvous(a.address);
          reuse.resolve(undefined);
        } catch (err) {
          reuse.resolve(err);
        }
        await conn.send("hello from listener");
        for (let m = await conn.receive(); m; m = await conn.receive()) {
          await conn.send(m.type === "text" ? `listener:${m.data}` : m.data);
        }
        await conn.close();
      })().catch(reuse.reject);
    },
  });
  await logs.waitFor(/msg=control_started/);
  const conn = await dialRelay({ endpoint: ep, entity: HC, tokens: tokens() });
  const err = await within(reuse.promise, 5000, "second accept");
  assert.ok(err instanceof RelayDialError, String(err));
  assert.equal(err.status, 403);
  await talk(conn);
});
