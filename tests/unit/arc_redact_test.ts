import assert from "node:assert/strict";
import { redactArc, redactAttrs } from "../../lib/arc/redact.ts";

const SAS = "SharedAccessSignature sr=https%3A%2F%2Fns%2Fhc&sig=abc%2Bdef%3D&se=1700000000&skn=k";

Deno.test("Arc header values are redacted in any case, with or without a space", () => {
  for (
    const name of ["Servicebusauthorization", "ServiceBusAuthorization", "SERVICEBUSAUTHORIZATION"]
  ) {
    assert.equal(redactArc(`${name}: ${SAS}\r\nHost: x`), `${name}: REDACTED\r\nHost: x`);
    assert.equal(redactArc(`${name}:${SAS}`), `${name}:REDACTED`);
  }
  assert.equal(
    redactArc("service-configuration-token: opaque.token.value\nnext"),
    "service-configuration-token: REDACTED\nnext",
  );
});

Deno.test("header maps printed as JSON are redacted too", () => {
  const text = JSON.stringify({
    "Servicebusauthorization": SAS,
    "Service-Configuration-Token": "sct",
    "Microsoft-Guestgateway-Target": "localhost:22",
  });
  const out = redactArc(text);
  assert.ok(!out.includes("sig="));
  assert.ok(!out.includes('"sct"'));
  assert.ok(out.includes('"Microsoft-Guestgateway-Target":"localhost:22"'));
});

Deno.test("listCredentials JSON fields, sb-hc-token and known secrets are redacted", () => {
  const body = `{"relay":{"accessKey":"${SAS}","serviceConfigurationToken":"a\\"b","expiresOn":1}}`;
  assert.equal(
    redactArc(body),
    '{"relay":{"accessKey":"REDACTED","serviceConfigurationToken":"REDACTED","expiresOn":1}}',
  );
  assert.equal(
    redactArc("wss://h/$hc/x?sb-hc-token=abc&x=1"),
    "wss://h/$hc/x?sb-hc-token=REDACTED&x=1",
  );
  assert.equal(redactArc("saw topsecret-value here", ["topsecret-value"]), "saw REDACTED here");
  assert.equal(redactArc("short abc", ["abc"]), "short abc");
});

Deno.test("redactAttrs cleans string values only", () => {
  assert.deepEqual(redactAttrs({ error: `Servicebusauthorization: ${SAS}`, n: 3 }), {
    error: "Servicebusauthorization: REDACTED",
    n: 3,
  });
});
