/** lib/doctor/credential.ts: the chosen credential, whom an Entra token names, failures with fixes. */
import assert from "node:assert/strict";
import { encodeBase64Url } from "../../lib/crypto/base64.ts";
import { runChecks } from "../../lib/doctor/checks.ts";
import { credentialCheck, identityOf } from "../../lib/doctor/credential.ts";
import { createEntraTokenProvider, RELAY_FIX_HINT } from "../../lib/relay/entra.ts";
import { SasTokenProvider } from "../../lib/relay/token.ts";

const jwt = (claims: Record<string, unknown>) =>
  `e30.${encodeBase64Url(new TextEncoder().encode(JSON.stringify(claims)))}.sig`;

Deno.test("identityOf: user, managed identity, application, object, opaque", () => {
  assert.equal(identityOf(jwt({ upn: "a@b.example", appid: "x" })), "user a@b.example");
  assert.equal(
    identityOf(
      jwt({ xms_mirid: "/subscriptions/s/resourcegroups/g/providers/x/vm-1", appid: "x" }),
    ),
    "managed identity vm-1",
  );
  assert.equal(identityOf(jwt({ appid: "1111" })), "application 1111");
  assert.equal(identityOf(jwt({ oid: "2222" })), "object 2222");
  assert.equal(identityOf("not-a-jwt"), "an unnamed identity");
});

async function line(check: ReturnType<typeof credentialCheck>): Promise<string> {
  const lines: string[] = [];
  await runChecks([check], { timeoutMs: 1000, write: (l) => lines.push(l) });
  return lines[0];
}

Deno.test("credential check: the SAS key name, read back from the token", async () => {
  const tokens = new SasTokenProvider("listen-send", "k", { now: () => 0 });
  assert.equal(
    await line(credentialCheck(tokens, "https://ns.example/hc", () => 0)),
    '✔ credential and token: SAS key "listen-send" (AZTUNNEL_KEY_NAME), token valid for 1h0m0s',
  );
});

Deno.test("credential check: Entra success names the identity; failure lists what was tried", async () => {
  const good = createEntraTokenProvider({
    credential: {
      getToken: () => Promise.resolve({ token: jwt({ upn: "dev@x" }), expiresOnTimestamp: 600e3 }),
    },
    now: () => 0,
  });
  assert.equal(
    await line(credentialCheck(good, "https://ns.example/hc", () => 0)),
    "✔ credential and token: Entra ID (DefaultAzureCredential), token for user dev@x, valid for 10m0s",
  );
  const bad = createEntraTokenProvider({
    credential: {
      getToken: () => Promise.reject(new Error("AzureCliCredential: Please run 'az login'")),
    },
  });
  const text = await line(credentialCheck(bad, "https://ns.example/hc"));
  assert.ok(text.startsWith("✖ credential and token: Entra ID: "), text);
  assert.ok(text.includes("Azure CLI: not signed in (run `az login`)"), text);
  assert.ok(text.endsWith(`; fix: ${RELAY_FIX_HINT}`), text);
  assert.equal(text.split(RELAY_FIX_HINT).length, 2, "the hint once");
});
