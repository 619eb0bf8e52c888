import assert from "node:assert/strict";
import {
  isStartupRefusal,
  ListenerRefusedError,
  startupRefusal,
} from "../../lib/listener/refusal.ts";
import { ControlSessionError } from "../../lib/relay/control_channel.ts";
import { parseRelayEndpoint } from "../../lib/relay/endpoint.ts";

const refused = (status: number, statusText = "") =>
  new ControlSessionError(status === 404 ? "dial_failed" : "auth_failed", "x", {
    status,
    statusText,
  });

Deno.test("isStartupRefusal: 401/403 and 404 stop a never-connected listener; quota, 5xx and the rest do not", () => {
  assert.equal(isStartupRefusal(refused(401)), true);
  assert.equal(isStartupRefusal(refused(403)), true);
  assert.equal(isStartupRefusal(refused(404)), true);
  // The control channel files a 403 listener quota under dial_failed: more listeners, not a bad key.
  const quota = new ControlSessionError("dial_failed", "x", { status: 403 });
  assert.equal(isStartupRefusal(quota), false);
  assert.equal(
    isStartupRefusal(new ControlSessionError("dial_failed", "x", { status: 503 })),
    false,
  );
  assert.equal(
    isStartupRefusal(new ControlSessionError("dial_failed", "connection refused")),
    false,
  );
  assert.equal(isStartupRefusal(new ControlSessionError("token_fetch_failed", "no token")), false);
});

Deno.test("startupRefusal: 404 on Azure names the namespace and the az command", () => {
  const ep = parseRelayEndpoint("myns");
  const err = startupRefusal(refused(404, "Endpoint does not exist"), ep, "ssh");
  assert.ok(err instanceof ListenerRefusedError);
  assert.equal(err.code, "hyco_not_found");
  assert.ok(err.cause instanceof ControlSessionError);
  assert.equal(
    err.message,
    "relay wss://myns.servicebus.windows.net answered HTTP 404 Endpoint does not exist: hybrid " +
      "connection ssh does not exist in myns: create it (az relay hyco create --resource-group " +
      "<group> --namespace-name myns --name ssh)",
  );
});

Deno.test("startupRefusal: 404 from a local relay-server (ws://, an IP, localhost) points to --hyco", () => {
  for (const relay of ["ws://relay.example:8080", "wss://127.0.0.1:8443", "wss://localhost:8443"]) {
    const err = startupRefusal(refused(404), parseRelayEndpoint(relay), "ssh");
    assert.match(
      err.message,
      new RegExp(
        `^relay ${relay} answered HTTP 404: hybrid connection ssh does not exist in ${relay}: ` +
          "start relay-server with --hyco ssh \\(or without --hyco, to serve any name\\)$",
      ),
      relay,
    );
  }
});

Deno.test("startupRefusal: 401 and 403 name the relay, the hyco, the answer and the fix", () => {
  const ep = parseRelayEndpoint("wss://myns.servicebus.windows.net");
  const e401 = startupRefusal(refused(401, "InvalidSignature"), ep, "ssh");
  assert.equal(e401.code, "auth_failed");
  assert.equal(
    e401.message,
    "relay wss://myns.servicebus.windows.net refused the listener for hybrid connection ssh " +
      "(HTTP 401 InvalidSignature): check AZTUNNEL_KEY_NAME/AZTUNNEL_KEY or the Entra " +
      "identity's role (Azure Relay Listener)",
  );
  const e403 = startupRefusal(refused(403), ep, "ssh");
  assert.equal(
    e403.message,
    "relay wss://myns.servicebus.windows.net refused the listener for hybrid connection ssh " +
      "(HTTP 403): the key/role lacks Listen: use a SAS policy with the Listen right or give " +
      "the identity the Azure Relay Listener role",
  );
});
