import assert from "node:assert/strict";
import {
  type AccessTokenLike,
  createEntraTokenProvider,
  type CredentialLike,
  EntraTokenCache,
  REFRESH_SKEW_MS,
  RELAY_SCOPE,
} from "../../lib/relay/entra.ts";
import { AztunnelError } from "../../lib/errors.ts";
import { configureLogging, resetLogging } from "../../lib/observe/log.ts";

const HOUR = 3_600_000;

/** A credential whose answers the test releases by hand, counting calls and scopes. */
class ManualCredential implements CredentialLike {
  calls: Array<string | string[]> = [];
  #pending: Array<{ resolve(t: AccessTokenLike): void; reject(e: unknown): void }> = [];
  #waiters: Array<() => void> = [];

  getToken(scopes: string | string[]): Promise<AccessTokenLike | null> {
    this.calls.push(scopes);
    for (const w of this.#waiters.splice(0)) w();
    return new Promise((resolve, reject) => this.#pending.push({ resolve, reject }));
  }
  /** Resolves once at least `n` calls have been made. */
  async called(n: number): Promise<void> {
    while (this.calls.length < n) await new Promise<void>((r) => this.#waiters.push(r));
  }
  resolveNext(t: AccessTokenLike): void {
    const p = this.#pending.shift();
    assert.ok(p, "no pending getToken");
    p.resolve(t);
  }
  rejectNext(e: unknown): void {
    const p = this.#pending.shift();
    assert.ok(p, "no pending getToken");
    p.reject(e);
  }
}

function clock(start = 1_700_000_000_000) {
  let t = start;
  return {
    now: () => t,
    advance: (ms: number) => void (t += ms),
    at: (ms: number) => void (t = ms),
  };
}

/** A cache of scope "s" on a manual credential and a fake clock. */
function manualCache() {
  const cred = new ManualCredential();
  const c = clock();
  return { cred, c, cache: new EntraTokenCache("s", { credential: cred, now: c.now }) };
}

/** `cache.get()`, for which the credential answers its `n`th call with `t`. */
async function getAnswered(
  cache: EntraTokenCache,
  cred: ManualCredential,
  n: number,
  t: AccessTokenLike,
) {
  const got = cache.get();
  await cred.called(n);
  cred.resolveNext(t);
  return await got;
}

Deno.test("64 concurrent callers share one fetch and one token", async () => {
  const cred = new ManualCredential();
  const c = clock();
  const provider = createEntraTokenProvider({ credential: cred, now: c.now });
  assert.equal(provider.kind, "entra");
  const all = Promise.all(
    Array.from({ length: 64 }, (_, i) => provider.getToken(`https://ns/hc${i}`)),
  );
  await cred.called(1);
  cred.resolveNext({ token: "jwt-1", expiresOnTimestamp: c.now() + HOUR });
  const tokens = await all;
  assert.equal(cred.calls.length, 1);
  assert.deepEqual(cred.calls[0], RELAY_SCOPE);
  assert.ok(tokens.every((t) => t.token === "jwt-1" && t.expiresAt === c.now() + HOUR));
});

Deno.test("a cached token is reused until 5 minutes before expiry", async () => {
  const { cred, c, cache } = manualCache();
  const exp = c.now() + HOUR;
  const first = await getAnswered(cache, cred, 1, { token: "a", expiresOnTimestamp: exp });
  assert.equal(first.token, "a");
  c.at(exp - REFRESH_SKEW_MS - 1);
  assert.equal((await cache.get()).token, "a");
  assert.equal(cred.calls.length, 1);
  c.at(exp - REFRESH_SKEW_MS);
  const second = await getAnswered(cache, cred, 2, {
    token: "b",
    expiresOnTimestamp: c.now() + HOUR,
  });
  assert.equal(second.token, "b");
});

Deno.test("RefreshOn from the credential wins over the 5-minute rule", async () => {
  const { cred, c, cache } = manualCache();
  await getAnswered(cache, cred, 1, {
    token: "a",
    expiresOnTimestamp: c.now() + HOUR,
    refreshAfterTimestamp: c.now() + 10_000,
  });
  c.advance(9_999);
  assert.equal((await cache.get()).token, "a");
  c.advance(1);
  const second = await getAnswered(cache, cred, 2, {
    token: "b",
    expiresOnTimestamp: c.now() + HOUR,
  });
  assert.equal(second.token, "b");
});

Deno.test("errors are not cached and reach every waiter as auth_unavailable", async () => {
  const cred = new ManualCredential();
  const cache = new EntraTokenCache("s", { credential: cred, fixHint: "run az login" });
  const waiters = [cache.get(), cache.get(), cache.get()];
  await cred.called(1);
  cred.rejectNext(Object.assign(new Error("Azure CLI could not be found."), {
    name: "CredentialUnavailableError",
  }));
  for (const w of waiters) {
    await assert.rejects(w, (e: unknown) => {
      assert.ok(e instanceof AztunnelError);
      assert.equal(e.code, "auth_unavailable");
      assert.match(e.message, /Azure CLI: az not installed/);
      assert.match(e.message, /to fix: run az login$/);
      return true;
    });
  }
  assert.equal(cred.calls.length, 1);
  const retry = await getAnswered(cache, cred, 2, {
    token: "ok",
    expiresOnTimestamp: Date.now() + HOUR,
  });
  assert.equal(retry.token, "ok");
});

Deno.test("a waiter can abandon its wait without cancelling the shared fetch", async () => {
  const cred = new ManualCredential();
  const cache = new EntraTokenCache("s", { credential: cred });
  const ac = new AbortController();
  const abandoned = cache.get(ac.signal);
  const patient = cache.get();
  await cred.called(1);
  ac.abort(new DOMException("gave up", "AbortError"));
  await assert.rejects(abandoned, { name: "AbortError" });
  cred.resolveNext({ token: "t", expiresOnTimestamp: Date.now() + HOUR });
  assert.equal((await patient).token, "t");
  assert.equal(cred.calls.length, 1);
  await assert.rejects(cache.get(AbortSignal.abort()), { name: "AbortError" });
});

Deno.test("a failed refresh keeps serving a token that is still valid", async () => {
  const lines: string[] = [];
  await configureLogging({ level: "debug", write: (l) => lines.push(l) });
  try {
    const { cred, c, cache } = manualCache();
    const exp = c.now() + HOUR;
    await getAnswered(cache, cred, 1, { token: "old", expiresOnTimestamp: exp });
    c.at(exp - 2 * 60_000);
    const stale = cache.get();
    await cred.called(2);
    cred.rejectNext(new Error("IMDS hiccup"));
    assert.equal((await stale).token, "old");
    assert.ok(
      lines.some((l) => l.includes('msg="entra token refresh failed, using the current token"')),
    );
    c.at(exp - 30_000);
    const late = cache.get();
    await cred.called(3);
    cred.rejectNext(new Error("IMDS hiccup"));
    await assert.rejects(late, { code: "auth_unavailable" });
  } finally {
    await resetLogging();
  }
});

Deno.test("an empty answer from the credential is an error", async () => {
  const cache = new EntraTokenCache("s", {
    credential: { getToken: () => Promise.resolve(null) },
  });
  await assert.rejects(cache.get(), { code: "auth_unavailable", message: /returned no token/ });
});

Deno.test("without an injected credential the provider is one per process", () => {
  assert.equal(createEntraTokenProvider(), createEntraTokenProvider());
});

Deno.test("minValidityMs: a cached token that expires too soon is replaced", async () => {
  const c = clock();
  let n = 0;
  const cred: CredentialLike = {
    getToken: () => Promise.resolve({ token: `jwt-${++n}`, expiresOnTimestamp: c.now() + HOUR }),
  };
  const cache = new EntraTokenCache(RELAY_SCOPE, { credential: cred, now: c.now });
  const first = await cache.get();
  c.advance(45 * 60_000);
  // 15 minutes left: enough for this caller, not for one that needs 20.
  assert.equal(await cache.get(undefined, { minValidityMs: 15 * 60_000 }), first);
  const fresh = await cache.get(undefined, { minValidityMs: 20 * 60_000 });
  assert.equal(fresh.token, "jwt-2");
  assert.equal(fresh.expiresAt, c.now() + HOUR);
  // The replacement is what everyone gets from now on.
  assert.equal(await cache.get(), fresh);
  assert.equal(n, 2);
});
