import assert from "node:assert/strict";
import { createEntraTokenProvider } from "../../lib/relay/entra.ts";
import {
  renewDelay,
  RenewError,
  renewLoop,
  renewMinValidityMs,
  renewOnce,
} from "../../lib/relay/renew.ts";
import { SasTokenProvider, type Token, type TokenProvider } from "../../lib/relay/token.ts";
import { getLogger } from "../../lib/observe/log.ts";
import { captureLogs } from "../helpers/logs.ts";

Deno.test("renewDelay: 45 min for a 1 h token, 25 % margin for long ones, floors", () => {
  const t0 = 1_700_000_000_000;
  const min = 60_000;
  const tok = (lifetime: number) => ({ token: "t", expiresAt: t0 + lifetime });
  assert.equal(renewDelay(tok(60 * min), t0, t0), 45 * min);
  assert.equal(renewDelay(tok(90 * min), t0, t0), 67.5 * min);
  assert.equal(renewDelay(tok(24 * 60 * min), t0, t0), 18 * 60 * min);
  assert.equal(renewDelay(tok(10 * min), t0, t0), 5 * min);
  // Measured from now, not from when the token was obtained.
  assert.equal(renewDelay(tok(60 * min), t0, t0 + 10 * min), 35 * min);
  // A token with under 5 min left would renew at once: wait at least 30 s instead.
  assert.equal(renewDelay(tok(3 * min), t0, t0), 30_000);
  assert.equal(renewDelay(tok(-min), t0, t0), 30_000);
  // An explicit margin replaces the policy and its floor.
  assert.equal(renewDelay(tok(400), t0, t0, 300), 100);
  assert.equal(renewDelay(tok(400), t0, t0 + 200, 300), 0);
});

function tokens(script: (Token | Error)[]): TokenProvider & { calls: number } {
  return {
    kind: "sas",
    calls: 0,
    getToken() {
      const next = script[Math.min(this.calls++, script.length - 1)];
      return next instanceof Error ? Promise.reject(next) : Promise.resolve(next);
    },
  };
}

const CURRENT: Token = { token: "old", expiresAt: Date.now() + 60_000 };
const fresh = (): Token => ({ token: "new", expiresAt: Date.now() + 3_600_000 });

Deno.test("renewOnce sends renewToken and logs the attempt", async () => {
  await using logs = await captureLogs();
  const sent: string[] = [];
  const socket = { send: (d: string | Uint8Array) => (sent.push(String(d)), Promise.resolve()) };
  const t = fresh();
  const result = await renewOnce(socket, CURRENT, new AbortController().signal, getLogger(), {
    tokens: tokens([t]),
    resourceUri: "https://ns/hc",
  });
  assert.equal(result, t);
  assert.deepEqual(sent, ['{"renewToken":{"token":"new"}}']);
  assert.match(await logs.waitFor(/msg=renew_attempted/), /attempt=1 expires_in_seconds=60/);
  assert.match(
    await logs.waitFor(/msg=renew_ok/),
    /attempt=1 new_expires_in_seconds=3600 elapsed_ms=\d+/,
  );
});

Deno.test("renewOnce retries token failures, then gives up after 3 attempts", async () => {
  await using logs = await captureLogs();
  const sent: string[] = [];
  const socket = { send: (d: string | Uint8Array) => (sent.push(String(d)), Promise.resolve()) };
  const opts = { resourceUri: "u", retryDelaysMs: [1, 1] };
  const signal = new AbortController().signal;
  const flaky = tokens([new Error("down"), new Error("down"), fresh()]);
  assert.equal(
    ((await renewOnce(socket, CURRENT, signal, getLogger(), { ...opts, tokens: flaky })) as Token)
      .token,
    "new",
  );
  assert.equal(flaky.calls, 3);
  assert.equal(sent.length, 1);
  const dead = tokens([new Error("down")]);
  const failure = await renewOnce(socket, CURRENT, signal, getLogger(), { ...opts, tokens: dead });
  assert.ok(failure instanceof RenewError);
  assert.equal(failure.message, "get token: down");
  assert.equal(failure.code, "token_fetch_failed");
  assert.equal(dead.calls, 3);
  assert.equal(logs.count([/msg=renew_failed/, /code=token_fetch_failed/]), 5);
});

Deno.test("renewOnce fails at once when the channel cannot be written", async () => {
  await using logs = await captureLogs();
  const socket = { send: () => Promise.reject(new Error("send after close")) };
  const t = tokens([fresh()]);
  const result = await renewOnce(socket, CURRENT, new AbortController().signal, getLogger(), {
    tokens: t,
    resourceUri: "u",
  });
  assert.ok(result instanceof RenewError);
  assert.equal(result.message, "send renewToken: send after close");
  assert.equal(result.code, "connection_lost");
  assert.equal(t.calls, 1);
  assert.match(await logs.waitFor(/msg=renew_failed/), /code=connection_lost/);
});

Deno.test("renewLoop stops quietly when its session ends", async () => {
  const ac = new AbortController();
  const loop = renewLoop({ send: () => Promise.resolve() }, CURRENT, ac.signal, getLogger(), {
    tokens: tokens([fresh()]),
    resourceUri: "u",
  });
  ac.abort();
  assert.equal(await loop, null);
});

Deno.test("Entra renewal sends a fresh token that outlives the old one, every 45 minutes", async () => {
  const MIN = 60_000;
  const t0 = 1_700_000_000_000;
  let t = t0;
  const issued: Token[] = [];
  const provider = createEntraTokenProvider({
    credential: {
      getToken: () => {
        const token = { token: `jwt-${issued.length + 1}`, expiresOnTimestamp: t + 60 * MIN };
        issued.push({ token: token.token, expiresAt: token.expiresOnTimestamp });
        return Promise.resolve(token);
      },
    },
    now: () => t,
  });
  const first = await provider.getToken("https://ns/hc");
  const ac = new AbortController();
  const sent: Array<{ at: number; token: string }> = [];
  const socket = {
    send(d: string | Uint8Array) {
      sent.push({ at: t - t0, token: JSON.parse(String(d)).renewToken.token });
      if (sent.length === 2) ac.abort();
      return Promise.resolve();
    },
  };
  const result = await renewLoop(socket, first, ac.signal, getLogger(), {
    tokens: provider,
    resourceUri: "https://ns/hc",
    now: () => t,
    // A fake timer: time passes at once, so hours of renewals take no wall time.
    sleep: (ms, signal) => {
      if (signal.aborted) return Promise.reject(signal.reason);
      t += ms;
      return Promise.resolve();
    },
  });
  assert.equal(result, null);
  // Without minValidityMs the cache would hand jwt-1 back at 45 minutes (it refreshes at 55).
  assert.deepEqual(sent, [{ at: 45 * MIN, token: "jwt-2" }, { at: 90 * MIN, token: "jwt-3" }]);
  assert.deepEqual(issued.map((i) => i.expiresAt - t0), [60 * MIN, 105 * MIN, 150 * MIN]);
  assert.ok(issued[1].expiresAt > first.expiresAt);
});

Deno.test("renewMinValidityMs: past the current expiry by the 30 s floor; SAS mints anyway", async () => {
  const now = 1_700_000_000_000;
  assert.equal(renewMinValidityMs({ token: "t", expiresAt: now + 15 * 60_000 }, now), 930_000);
  assert.equal(renewMinValidityMs({ token: "t", expiresAt: now - 1000 }, now), 30_000);
  const sas = new SasTokenProvider("k", "secret", { now: () => now });
  const a = await sas.getToken("https://ns/hc", undefined, { minValidityMs: 2 * 3_600_000 });
  assert.equal(a.expiresAt, now + 3_600_000);
});
