import assert from "node:assert/strict";
import { RelayDialError } from "../../lib/relay/dial_error.ts";
import { parseRelayEndpoint } from "../../lib/relay/endpoint.ts";
import { SasTokenProvider, type TokenProvider } from "../../lib/relay/token.ts";
import {
  checkStartupToken,
  CredentialWatch,
  senderAuthAttrs,
  senderRefusal,
} from "../../lib/sender/credentials.ts";
import type { SenderRelayConfig } from "../../lib/sender/open_tunnel.ts";
import { getLogger } from "../../lib/observe/log.ts";
import { captureLogs } from "../helpers/logs.ts";
import { startPortForward, startStack } from "../helpers/tunnel_stack.ts";

const endpoint = parseRelayEndpoint("ws://127.0.0.1:9");

function relayWith(tokens: TokenProvider): SenderRelayConfig {
  return { endpoint, entity: "hc", tokens };
}

/** An Entra-kind provider answering from `get`, recording the resource URIs asked for. */
function entra(get: (signal?: AbortSignal) => Promise<string>) {
  const asked: string[] = [];
  const tokens: TokenProvider = {
    kind: "entra",
    getToken: async (uri, signal) => {
      asked.push(uri);
      return { token: await get(signal), expiresAt: Date.now() + 3_600_000 };
    },
  };
  return { tokens, asked };
}

const refused = (status: number, statusText: string) =>
  new RelayDialError("auth_failed", `relay refused the credentials (HTTP ${status})`, {
    status,
    statusText,
  });

Deno.test("senderAuthAttrs: the mode when known (key name, never the key), else the tokens' kind", () => {
  const sas = relayWith(new SasTokenProvider("send-policy", "c2VjcmV0"));
  assert.deepEqual(senderAuthAttrs(sas, { kind: "sas", keyName: "send-policy" }), {
    auth: "sas",
    key_name: "send-policy",
  });
  assert.deepEqual(senderAuthAttrs(sas, undefined), { auth: "sas" });
  assert.deepEqual(
    senderAuthAttrs(relayWith(entra(() => Promise.resolve("t")).tokens), {
      kind: "entra",
    }),
    { auth: "entra" },
  );
});

Deno.test("checkStartupToken: Entra fetches a token for the hyco; its failure is thrown as is", async () => {
  const ok = entra(() => Promise.resolve("jwt"));
  await checkStartupToken(relayWith(ok.tokens), new AbortController().signal);
  assert.deepEqual(ok.asked, ["https://127.0.0.1:9/hc"]);
  const failure = new Error("Entra ID authentication failed: …; to fix: az login");
  const bad = entra(() => Promise.reject(failure));
  await assert.rejects(
    checkStartupToken(relayWith(bad.tokens), new AbortController().signal),
    (err) => err === failure,
  );
});

Deno.test("checkStartupToken: SAS needs no fetch", async () => {
  let calls = 0;
  const sas: TokenProvider = {
    kind: "sas",
    getToken: () => {
      calls++;
      return Promise.reject(new Error("not called"));
    },
  };
  await checkStartupToken(relayWith(sas), new AbortController().signal);
  assert.equal(calls, 0);
});

Deno.test("senderRefusal: 401 and 403 name the relay, the hyco, the answer and the fix", () => {
  const relay = relayWith(new SasTokenProvider("n", "k"));
  assert.equal(
    senderRefusal(refused(401, "Unauthorized: invalid signature"), relay),
    "relay ws://127.0.0.1:9 refused the sender for hybrid connection hc (HTTP 401 Unauthorized: " +
      "invalid signature): check AZTUNNEL_KEY_NAME/AZTUNNEL_KEY or the Entra identity's role " +
      "(Azure Relay Sender)",
  );
  assert.equal(
    senderRefusal(refused(403, "Forbidden"), relay),
    "relay ws://127.0.0.1:9 refused the sender for hybrid connection hc (HTTP 403 Forbidden): the " +
      "key/role lacks Send: use a SAS policy with the Send right or give the identity the Azure " +
      "Relay Sender role",
  );
});

Deno.test("CredentialWatch: only the first refusal before any success is an ERROR", async () => {
  await using logs = await captureLogs();
  const relay = relayWith(new SasTokenProvider("n", "k"));
  const first = new CredentialWatch(relay, getLogger());
  first.failed(new RelayDialError("dial_timeout", "timed out"));
  assert.equal(logs.count(/level=ERROR/), 0, "not a refusal");
  first.failed(refused(401, "Unauthorized"));
  first.failed(refused(401, "Unauthorized"));
  assert.equal(logs.count(/level=ERROR/), 1);
  assert.match(
    logs.lines.find((l) => l.includes("level=ERROR")) ?? "",
    /msg="relay ws:\/\/127\.0\.0\.1:9 refused the sender for hybrid connection hc \(HTTP 401 Unauthorized\): check AZTUNNEL_KEY_NAME\/AZTUNNEL_KEY .*" status=401/,
  );

  const rotated = new CredentialWatch(relay, getLogger());
  rotated.accepted();
  rotated.failed(refused(401, "Unauthorized"));
  assert.equal(logs.count(/level=ERROR/), 1, "once accepted, a refusal is the mode's WARN only");
});

Deno.test("port-forward with a wrong key: listening names the auth, the first refused client is an ERROR, it keeps serving", async () => {
  await using stack = await startStack({ allowlist: null });
  const relay = { ...stack.relay, tokens: new SasTokenProvider("test-policy", "d3Jvbmcta2V5") };
  await using fwd = await startPortForward(relay, "127.0.0.1:9", {
    relayAuth: { kind: "sas", keyName: "test-policy" },
  });
  assert.match(
    await stack.logs.waitFor(/msg="port-forward listening"/),
    /side=sender bind=127\.0\.0\.1:\d+ target=127\.0\.0\.1:9 auth=sas key_name=test-policy\n$/,
  );
  for (let i = 1; i <= 2; i++) {
    const client = await fwd.connect();
    assert.equal(await client.read(new Uint8Array(8)).catch(() => null), null);
    client.close();
    await stack.logs.waitFor(/level=WARN msg="forward failed"/, 20_000, i);
  }
  const errors = stack.logs.lines.filter((l) => l.includes("level=ERROR"));
  assert.equal(errors.length, 1, errors.join(""));
  assert.match(
    errors[0],
    new RegExp(
      `msg="relay ${stack.server.url} refused the sender for hybrid connection hc \\(HTTP 401 ` +
        `Unauthorized: invalid signature\\): check AZTUNNEL_KEY_NAME/AZTUNNEL_KEY or the Entra ` +
        `identity's role \\(Azure Relay Sender\\)" side=sender status=401\\n$`,
    ),
  );
});
