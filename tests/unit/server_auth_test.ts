import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { audiencePath, authorize, extractToken } from "../../lib/server/auth.ts";
import { audienceIsRelay, verifyHs256Jwt } from "../../lib/server/jwt.ts";
import {
  hasRight,
  parseSasPolicy,
  parseSasPolicyFile,
  parseSasPolicyList,
  randomKey,
  resolvePolicies,
  type SasPolicy,
} from "../../lib/server/policy.ts";
import { createSasToken } from "../../lib/relay/sas.ts";
import { UsageError } from "../../lib/errors.ts";

const NOW = 1_800_000_000_000;
const LATER = NOW / 1000 + 3600;
const POLICIES: SasPolicy[] = [
  { name: "all", key: "k-all", rights: ["Listen", "Send", "Manage"] },
  { name: "manage", key: "k-manage", rights: ["Manage"] },
  { name: "listen", key: "k-listen", rights: ["Listen"] },
  { name: "send", key: "k-send", rights: ["Send"] },
];
const CFG = { policies: POLICIES, jwtKey: "jwt-secret" };

/** A token signed the way .NET/Node do: `sr` encoded with uppercase (or lowercase) hex, not lowercased. */
function foreignSas(sr: string, key: string, keyName: string, se: number): string {
  const sig = createHmac("sha256", Buffer.from(key, "utf8")).update(`${sr}\n${se}`).digest(
    "base64",
  );
  return `SharedAccessSignature sig=${encodeURIComponent(sig)}&se=${se}&skn=${keyName}&sr=${sr}`;
}

function b64url(s: string | Uint8Array): string {
  return Buffer.from(s).toString("base64url");
}

function jwt(payload: Record<string, unknown>, secret = "jwt-secret", alg = "HS256"): string {
  const h = b64url(JSON.stringify({ alg, typ: "JWT" }));
  const p = b64url(JSON.stringify(payload));
  const sig = createHmac("sha256", secret).update(`${h}.${p}`).digest("base64url");
  return `${h}.${p}.${sig}`;
}

Deno.test("parseSasPolicy: rights suffix, defaults, keys with colons, errors", () => {
  assert.deepEqual(parseSasPolicy("n=k"), {
    name: "n",
    key: "k",
    rights: ["Listen", "Send", "Manage"],
  });
  assert.deepEqual(parseSasPolicy("n=k:Listen"), { name: "n", key: "k", rights: ["Listen"] });
  assert.deepEqual(parseSasPolicy("n=k:send, listen,Send"), {
    name: "n",
    key: "k",
    rights: ["Send", "Listen"],
  });
  assert.deepEqual(parseSasPolicy("n=a:b=="), {
    name: "n",
    key: "a:b==",
    rights: ["Listen", "Send", "Manage"],
  });
  assert.deepEqual(parseSasPolicy("n=a=b:Manage"), { name: "n", key: "a=b", rights: ["Manage"] });
  for (const bad of ["", "=k", "n", "n=", "n=:Listen", "a b=k", `n=${"x".repeat(257)}`]) {
    assert.throws(() => parseSasPolicy(bad), UsageError, bad);
  }
  assert.throws(
    () => parseSasPolicy("a b=supersecret"),
    (e: Error) => e instanceof UsageError && !e.message.includes("supersecret"),
  );
  assert.equal(parseSasPolicy("n=k:").key, "k:");
});

Deno.test("parseSasPolicy: a word list after the last colon must be all rights", () => {
  const refused: [string, string][] = [
    ["foo=bar:Listen,Bogus", 'unknown right "Bogus"'],
    ["foo=bar:Lsiten", 'unknown right "Lsiten"'],
    // A key with a colon and word-like text after it needs an explicit rights suffix.
    ["foo=abc:def", 'unknown right "def"'],
  ];
  for (const [text, why] of refused) {
    assert.throws(() => parseSasPolicy(text), (e: Error) => {
      assert.ok(e instanceof UsageError);
      assert.equal(
        e.message,
        `invalid --sas-policy "foo=***": ${why} (expected Listen, Send or Manage)`,
      );
      return true;
    }, text);
  }
  for (const [text, list] of [["n=k:Listen,,Send", "Listen,,Send"], ["n=k:Listen,", "Listen,"]]) {
    assert.throws(() => parseSasPolicy(text), {
      message: `invalid --sas-policy "n=***": empty right in "${list}"`,
    }, text);
  }
  assert.deepEqual(parseSasPolicy("foo=abc:def:Listen,Send,Manage"), {
    name: "foo",
    key: "abc:def",
    rights: ["Listen", "Send", "Manage"],
  });
  assert.deepEqual(parseSasPolicy("n=k: LISTEN , manage"), {
    name: "n",
    key: "k",
    rights: ["Listen", "Manage"],
  });
  // Not a word list (base64 padding, `+`, `/`): all of it is the key.
  assert.equal(parseSasPolicy("n=a:b+c/d=").key, "a:b+c/d=");
  assert.throws(
    () => parseSasPolicy("x=k:Nope", "AZTUNNEL_RELAY_SAS_POLICIES entry"),
    {
      message:
        'invalid AZTUNNEL_RELAY_SAS_POLICIES entry "x=***": unknown right "Nope" (expected Listen, Send or Manage)',
    },
  );
  assert.throws(() => parseSasPolicy("a;b=k"), {
    message: `invalid --sas-policy "a;b=***": the name must not contain spaces, '&' or ';'`,
  });
});

Deno.test("parseSasPolicyList and parseSasPolicyFile: separators, comments, line numbers", () => {
  assert.deepEqual(parseSasPolicyList(" a=k1:Listen ; b=k2\nc=k3:Send;;\r\n", "ENV"), [
    { name: "a", key: "k1", rights: ["Listen"] },
    { name: "b", key: "k2", rights: ["Listen", "Send", "Manage"] },
    { name: "c", key: "k3", rights: ["Send"] },
  ]);
  assert.deepEqual(parseSasPolicyList(" ; \n", "ENV"), []);
  const file = "# listeners\nlisten=k1:Listen\n\n   # senders\r\nsend=k2+/=:Send\r\n";
  assert.deepEqual(parseSasPolicyFile(file, "/etc/p"), [
    { name: "listen", key: "k1", rights: ["Listen"] },
    { name: "send", key: "k2+/=", rights: ["Send"] },
  ]);
  assert.throws(() => parseSasPolicyFile("# x\nok=k\nbad=k:Listen,Bogus\n", "/etc/p"), {
    message:
      'invalid --sas-policy-file /etc/p:3 "bad=***": unknown right "Bogus" (expected Listen, Send or Manage)',
  });
});

Deno.test("hasRight: Manage implies Listen and Send", () => {
  assert.ok(hasRight(["Manage"], "Listen"));
  assert.ok(hasRight(["Manage"], "Send"));
  assert.ok(hasRight(["Listen"], "Listen"));
  assert.ok(!hasRight(["Listen"], "Send"));
  assert.ok(!hasRight([], "Listen"));
});

Deno.test("resolvePolicies: flags and file, then the policy list, then AZTUNNEL_KEY*, then generated", () => {
  const env = (vars: Record<string, string>) => ({ get: (k: string) => vars[k] });
  const keyEnv = env({ AZTUNNEL_KEY_NAME: "x", AZTUNNEL_KEY: "y" });
  const fromFile = [{ name: "f", key: "kf", rights: ["Listen" as const] }];
  assert.deepEqual(
    resolvePolicies({ flags: ["a=1:Send"], file: fromFile, list: "l=2" }, keyEnv),
    {
      policies: [
        { name: "a", key: "1", rights: ["Send"] },
        { name: "f", key: "kf", rights: ["Listen"] },
      ],
    },
  );
  assert.deepEqual(resolvePolicies({ file: fromFile, list: "l=2" }, keyEnv), {
    policies: fromFile,
  });
  assert.deepEqual(resolvePolicies({ list: "l=2:Manage;m=3" }, keyEnv), {
    policies: [
      { name: "l", key: "2", rights: ["Manage"] },
      { name: "m", key: "3", rights: ["Listen", "Send", "Manage"] },
    ],
  });
  assert.throws(() => resolvePolicies({ flags: ["a=1", "a=2"] }, env({})), {
    message: 'duplicate SAS policy name "a"',
  });
  assert.throws(() => resolvePolicies({ flags: ["f=1"], file: fromFile }, env({})), {
    message: 'duplicate SAS policy name "f"',
  });
  // An empty list is no list.
  assert.deepEqual(resolvePolicies({ list: "" }, keyEnv), {
    policies: [{ name: "x", key: "y", rights: ["Listen", "Send", "Manage"] }],
  });
  assert.throws(() => resolvePolicies({}, env({ AZTUNNEL_KEY: "y" })), UsageError);
  const gen = resolvePolicies({}, env({}));
  assert.ok(gen.generated);
  assert.deepEqual(gen.policies, [gen.generated]);
  assert.equal(atob(gen.generated.key).length, 32);
  assert.notEqual(randomKey(), randomKey());
});

Deno.test("extractToken: header first, then form-decoded query", () => {
  const q = new URLSearchParams("sb-hc-token=SharedAccessSignature+sr%3Dq");
  assert.equal(extractToken(new Headers({ ServiceBusAuthorization: "H" }), q), "H");
  assert.equal(extractToken(new Headers(), q), "SharedAccessSignature sr=q");
  assert.equal(
    extractToken(new Headers({ ServiceBusAuthorization: " " }), new URLSearchParams()),
    undefined,
  );
});

Deno.test("audiencePath ignores scheme and port; decodes; trims slashes; needs a scheme", () => {
  assert.equal(audiencePath("https%3A%2F%2Fns.servicebus.windows.net%2Fhyco"), "hyco");
  assert.equal(
    audiencePath("http%3a%2f%2fns.servicebus.windows.net%3a443%2fHyco%2fsub%2f"),
    "Hyco/sub",
  );
  assert.equal(audiencePath("sb%3A%2F%2Fns%2F"), "");
  assert.equal(audiencePath("http%3A%2F%2Fns"), "");
  assert.equal(audiencePath("http%3A%2F%2Fns.example%2Fa%2520b"), "a b");
  // Not a URI: before, `sr=other` read as host "other" and granted the whole namespace.
  assert.equal(audiencePath("other"), undefined);
  assert.equal(audiencePath("ns.example%2Fhyco"), undefined);
  assert.equal(audiencePath("%ZZ"), undefined);
  assert.equal(audiencePath("http%3A%2F%2F%5B"), undefined);
});

Deno.test("authorize: SAS tokens from the Go tool, .NET and Node all verify over the raw sr", async () => {
  const go = await createSasToken("https://127.0.0.1:8080/Hyco", "all", "k-all", LATER);
  assert.deepEqual(await authorize(go, { right: "Listen", path: "hyco", now: NOW }, CFG), {
    ok: true,
    expiresAt: LATER * 1000,
    principal: "sas:all",
  });
  // .NET: http scheme, trailing slash, uppercase hex; lowercase hex as old samples; Node keeps :443.
  for (
    const sr of [
      "http%3A%2F%2Fns.servicebus.windows.net%2Fhyco%2F",
      "http%3a%2f%2fns.servicebus.windows.net%2fhyco%2f",
      "http%3A%2F%2Fns.servicebus.windows.net%3A443%2Fhyco%2Fsub%2Fpath",
      "http%3A%2F%2Fns.servicebus.windows.net%2F",
    ]
  ) {
    const t = foreignSas(sr, "k-send", "send", LATER);
    const r = await authorize(t, { right: "Send", path: "hyco/sub/path", now: NOW }, CFG);
    assert.equal(r.ok, true, sr);
  }
});

Deno.test("authorize: 401 for missing, malformed, unknown key, bad signature, expired", async () => {
  const cases: [string | undefined, RegExp][] = [
    [undefined, /missing token/],
    ["", /missing token/],
    ["garbage", /malformed token/],
    ["SharedAccessSignature sr=a&sig=b", /malformed SAS token/],
    ["SharedAccessSignature sr=a&sig=b&se=soon&skn=all", /malformed SAS token/],
    [await createSasToken("https://h/hyco", "nobody", "k-all", LATER), /unknown SAS key name/],
    [await createSasToken("https://h/hyco", "all", "wrong-key", LATER), /invalid signature/],
    [await createSasToken("https://h/hyco", "all", "k-all", NOW / 1000 - 1), /token expired/],
    [await createSasToken("https://h/hyco", "all", "k-all", NOW / 1000), /token expired/],
    [foreignSas("%ZZ", "k-all", "all", LATER), /malformed SAS resource/],
  ];
  for (const [token, why] of cases) {
    const r = await authorize(token, { right: "Listen", path: "hyco", now: NOW }, CFG);
    assert.equal(r.ok, false, String(token));
    if (r.ok) continue;
    assert.equal(r.status, 401, String(token));
    assert.match(r.reason, why);
  }
});

Deno.test("authorize: a signature over a re-encoded sr does not verify", async () => {
  // Signed over the lowercase-hex form, presented with uppercase hex: Azure rejects this too.
  const se = LATER;
  const sig = createHmac("sha256", "k-all").update(`http%3a%2f%2fh%2fhyco\n${se}`).digest("base64");
  const t = `SharedAccessSignature sr=http%3A%2F%2Fh%2Fhyco&sig=${
    encodeURIComponent(sig)
  }&se=${se}&skn=all`;
  const r = await authorize(t, { right: "Listen", path: "hyco", now: NOW }, CFG);
  assert.equal(r.ok ? 0 : r.status, 401);
});

Deno.test("authorize: 403 for wrong audience or missing right; Manage implies both", async () => {
  const tok = (uri: string, name: string, key: string) => createSasToken(uri, name, key, LATER);
  const status = async (token: string, right: "Listen" | "Send", path: string) => {
    const r = await authorize(token, { right, path, now: NOW }, CFG);
    return r.ok ? 200 : r.status;
  };
  assert.equal(await status(await tok("https://h/other", "all", "k-all"), "Listen", "hyco"), 403);
  assert.equal(await status(await tok("https://h/hy", "all", "k-all"), "Listen", "hyco"), 403);
  assert.equal(await status(await tok("https://h/hyco/sub", "all", "k-all"), "Send", "hyco"), 403);
  assert.equal(await status(await tok("https://h/hyco", "all", "k-all"), "Send", "hyco/sub"), 200);
  assert.equal(await status(await tok("https://h/", "all", "k-all"), "Send", "any/thing"), 200);
  assert.equal(
    await status(await tok("https://h/hyco", "listen", "k-listen"), "Send", "hyco"),
    403,
  );
  assert.equal(
    await status(await tok("https://h/hyco", "listen", "k-listen"), "Listen", "hyco"),
    200,
  );
  assert.equal(await status(await tok("https://h/hyco", "send", "k-send"), "Listen", "hyco"), 403);
  assert.equal(await status(await tok("https://h/hyco", "send", "k-send"), "Send", "hyco"), 200);
  assert.equal(
    await status(await tok("https://h/hyco", "manage", "k-manage"), "Listen", "hyco"),
    200,
  );
  assert.equal(
    await status(await tok("https://h/hyco", "manage", "k-manage"), "Send", "hyco"),
    200,
  );
  const r = await authorize(await tok("https://h/hyco", "send", "k-send"), {
    right: "Listen",
    path: "hyco",
    now: NOW,
  }, CFG);
  assert.ok(!r.ok && /lacks the Listen right/.test(r.reason));
});

Deno.test("authorize: HS256 JWTs (raw or Bearer) grant what their roles list", async () => {
  const exp = LATER;
  const roles = ["Listen", "Send"];
  const good = jwt({ exp, aud: "https://relay.azure.net", sub: "me", roles });
  assert.deepEqual(await authorize(good, { right: "Listen", path: "hyco", now: NOW }, CFG), {
    ok: true,
    expiresAt: exp * 1000,
    principal: "jwt:me",
  });
  assert.equal(
    (await authorize(`Bearer ${good}`, { right: "Send", path: "x", now: NOW }, CFG)).ok,
    true,
  );
  assert.equal(
    (await authorize(jwt({ exp, roles }), { right: "Send", path: "x", now: NOW }, CFG)).ok,
    true,
  );
  const noKey = await authorize(good, { right: "Send", path: "x", now: NOW }, {
    policies: POLICIES,
  });
  assert.ok(!noKey.ok && noKey.status === 401);
  for (
    const [token, why] of [
      [jwt({ exp, roles }, "other-secret"), /invalid JWT signature/],
      [jwt({ exp }), /no Listen, Send or Manage role/],
      [jwt({ exp, roles: [] }), /no Listen, Send or Manage role/],
      [jwt({ exp, roles: "Send" }), /no Listen, Send or Manage role/],
      [jwt({ exp, roles: ["Reader"] }), /no Listen, Send or Manage role/],
      [jwt({ exp: NOW / 1000 - 1 }), /JWT expired/],
      [jwt({}), /no exp/],
      [jwt({ exp, nbf: NOW / 1000 + 600 }), /not yet valid/],
      [jwt({ exp, aud: "https://management.azure.com" }), /audience/],
      [jwt({ exp }, "jwt-secret", "none"), /algorithm/],
      [jwt({ exp }, "jwt-secret", "RS256"), /algorithm/],
      ["eyJ.e30.!!", /malformed token/],
      [`${b64url("{")}.${b64url("{}")}.${b64url("x")}`, /malformed JWT/],
    ] as const
  ) {
    const r = await authorize(token, { right: "Send", path: "x", now: NOW }, CFG);
    assert.ok(!r.ok, token);
    assert.equal(r.status, 401);
    assert.match(r.reason, why);
  }
});

Deno.test("verifyHs256Jwt and audienceIsRelay edge cases", async () => {
  assert.ok(audienceIsRelay("https://relay.azure.net/"));
  assert.ok(audienceIsRelay("https://relay.azure.net//"));
  assert.ok(audienceIsRelay("sb://ns.servicebus.windows.net/"));
  assert.ok(audienceIsRelay(["api://x", "https://relay.azure.net"]));
  assert.ok(!audienceIsRelay("relay"));
  assert.ok(!audienceIsRelay(42));
  assert.ok(!audienceIsRelay(["https://evil.example"]));
  const r = await verifyHs256Jwt(jwt({ exp: 2e9, nbf: NOW / 1000 + 30 }), "jwt-secret", NOW);
  assert.equal(r.ok, true, "nbf within the allowed skew");
});

Deno.test("authorize: a JWT's roles grant Listen, Send or both (Manage); a missing one is 403", async () => {
  const status = async (roles: unknown, right: "Listen" | "Send") => {
    const r = await authorize(jwt({ exp: LATER, roles }), { right, path: "hyco", now: NOW }, CFG);
    return r.ok ? 200 : r.status;
  };
  assert.equal(await status(["Listen"], "Listen"), 200);
  assert.equal(await status(["Listen"], "Send"), 403);
  assert.equal(await status(["send"], "Send"), 200);
  assert.equal(await status(["Send"], "Listen"), 403);
  assert.equal(await status(["Manage"], "Listen"), 200);
  assert.equal(await status(["Manage"], "Send"), 200);
  assert.equal(await status(["Reader", "Send"], "Send"), 200);
  const r = await authorize(jwt({ exp: LATER, roles: ["Send"] }), {
    right: "Listen",
    path: "hyco",
    now: NOW,
  }, CFG);
  assert.ok(!r.ok && r.reason === "Forbidden: JWT lacks the Listen role");
});

Deno.test("authorize: an sr without scheme is refused; with hosts given, the sr host must be one", async () => {
  // `sr=other` signed with a real key: before, it passed as a namespace-wide grant.
  const bare = foreignSas("other", "k-all", "all", LATER);
  for (const path of ["hyco", "any/thing"]) {
    const r = await authorize(bare, { right: "Send", path, now: NOW }, CFG);
    assert.ok(!r.ok && r.status === 401 && /malformed SAS resource/.test(r.reason), path);
  }
  const hosts = new Set(["127.0.0.1", "relay.example"]);
  const tok = (uri: string) => createSasToken(uri, "all", "k-all", LATER);
  const status = async (token: string) => {
    const r = await authorize(token, { right: "Listen", path: "hyco", now: NOW, hosts }, CFG);
    return r.ok ? 200 : `${r.status} ${r.reason}`;
  };
  assert.equal(await status(await tok("https://127.0.0.1:8080/hyco")), 200);
  assert.equal(await status(await tok("sb://Relay.Example/hyco")), 200);
  assert.equal(
    await status(foreignSas("http%3A%2F%2FRELAY.example%3A443%2Fhyco%2F", "k-all", "all", LATER)),
    200,
  );
  assert.equal(
    await status(await tok("https://other.example/hyco")),
    "401 Unauthorized: token audience (sr) names another host",
  );
  assert.equal(
    await status(await tok("https://localhost/hyco")),
    "401 Unauthorized: token audience (sr) names another host",
  );
});
