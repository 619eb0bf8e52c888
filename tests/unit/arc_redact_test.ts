import assert from "node:assert/strict";
import { redactArc } from "../../lib/arc/redact.ts";

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

Deno.test("a redacted header value stops where the value does, so a following hint survives", () => {
  assert.equal(
    redactArc(
      "dial arc relay: HTTP 401 (Service-Configuration-Token: eyJhbGciOi.payload.sig; the relay " +
        "refused the Arc credentials (they may have expired; try again)",
    ),
    "dial arc relay: HTTP 401 (Service-Configuration-Token: REDACTED; the relay refused the Arc " +
      "credentials (they may have expired; try again)",
  );
  assert.equal(
    redactArc("Service-Configuration-Token: abc.def hint follows"),
    "Service-Configuration-Token: REDACTED hint follows",
  );
  assert.equal(
    redactArc('headers {"service-configuration-token":"abc.def","x":"1"} (see docs)'),
    'headers {"service-configuration-token":"REDACTED","x":"1"} (see docs)',
  );
  assert.equal(
    redactArc("service-configuration-token=abc.def, then check the agent"),
    "service-configuration-token=REDACTED, then check the agent",
  );
  // The access key's scheme word and its space belong to the value.
  assert.equal(
    redactArc(`Servicebusauthorization: ${SAS}; then a hint (with parentheses)`),
    "Servicebusauthorization: REDACTED; then a hint (with parentheses)",
  );
  assert.equal(
    redactArc(`map[Servicebusauthorization:[${SAS}]]`),
    "map[Servicebusauthorization:[REDACTED]]",
  );
});
