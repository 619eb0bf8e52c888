import assert from "node:assert/strict";
import {
  authFailureMessage,
  describeDialFailure,
  isNoResponse,
  RelayDialError,
} from "../../lib/relay/dial_error.ts";
import { WsError, WsHandshakeError } from "../../lib/ws/errors.ts";

Deno.test("authFailureMessage names what to fix for each credential kind", () => {
  assert.equal(
    authFailureMessage(401, "sas", "Sender"),
    "relay refused the credentials (HTTP 401): check AZTUNNEL_KEY_NAME/AZTUNNEL_KEY and that the policy grants Send",
  );
  assert.equal(
    authFailureMessage(401, "sas", "Listener"),
    "relay refused the credentials (HTTP 401): check AZTUNNEL_KEY_NAME/AZTUNNEL_KEY and that the policy grants Listen",
  );
  assert.equal(
    authFailureMessage(403, "entra", "Listener"),
    "relay refused the credentials (HTTP 403): check that the identity has the Azure Relay Listener role",
  );
  assert.equal(
    authFailureMessage(401, undefined, "Sender"),
    "relay refused the credentials (HTTP 401): check AZTUNNEL_KEY_NAME/AZTUNNEL_KEY or that the identity has the Azure Relay Sender role",
  );
});

Deno.test("dial errors never carry a token", () => {
  const leaky = new RelayDialError(
    "relay_failed",
    "dial wss://h/$hc/x?sb-hc-action=connect&sb-hc-token=SharedAccessSignature+sr%3Dx failed",
  );
  assert.equal(
    leaky.message,
    "dial wss://h/$hc/x?sb-hc-action=connect&sb-hc-token=REDACTED failed",
  );
  const hs = new WsHandshakeError("refused", {
    status: 404,
    statusText: "No such thing sb-hc-token=abc",
    headers: new Headers(),
    body: "",
  });
  assert.equal(describeDialFailure(hs), "HTTP 404 No such thing sb-hc-token=REDACTED");
  assert.equal(describeDialFailure(new Error("x sb-hc-token=y")), "x sb-hc-token=REDACTED");
});

Deno.test("an untrusted relay certificate names the flag that fixes it", () => {
  const tls = new WsError(
    "connect_failed",
    "TLS to 127.0.0.1:8443 failed: invalid peer certificate: UnknownIssuer",
  );
  assert.equal(
    describeDialFailure(tls),
    "TLS to 127.0.0.1:8443 failed: invalid peer certificate: UnknownIssuer (the relay's " +
      "certificate is not trusted: pass its CA with --relay-ca-cert)",
  );
});

Deno.test("only a missing answer counts as no response", () => {
  assert.equal(isNoResponse(new WsError("handshake_timeout", "t")), true);
  assert.equal(isNoResponse(new WsError("connection_lost", "t")), true);
  assert.equal(isNoResponse(new WsError("connect_failed", "refused")), false);
  assert.equal(isNoResponse(new WsError("aborted", "a")), false);
  assert.equal(isNoResponse(new Error("x")), false);
});
