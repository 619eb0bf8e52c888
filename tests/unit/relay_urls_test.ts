import assert from "node:assert/strict";
import { connectUrl, listenUrl, relayUrl, resourceUri, withToken } from "../../lib/relay/urls.ts";
import type { RelayEndpoint } from "../../lib/relay/endpoint.ts";

const AZ: RelayEndpoint = { scheme: "wss", host: "My-NS.servicebus.windows.net" };
const LOCAL: RelayEndpoint = { scheme: "ws", host: "127.0.0.1:8080" };

Deno.test("listen and connect URLs escape the entity like Go PathEscape", () => {
  assert.equal(
    listenUrl(AZ, "MyHC"),
    "wss://My-NS.servicebus.windows.net/$hc/MyHC?sb-hc-action=listen",
  );
  assert.equal(
    connectUrl(AZ, "my entity/sub"),
    "wss://My-NS.servicebus.windows.net/$hc/my%20entity%2Fsub?sb-hc-action=connect",
  );
  assert.equal(connectUrl(LOCAL, "hc"), "ws://127.0.0.1:8080/$hc/hc?sb-hc-action=connect");
});

Deno.test("withToken query-escapes the whole token once more", () => {
  const token = "SharedAccessSignature sr=https%3A%2F%2Fns%2Fhc&sig=a%2Bb%3D&se=1&skn=k";
  assert.equal(
    withToken(listenUrl(LOCAL, "hc"), token),
    "ws://127.0.0.1:8080/$hc/hc?sb-hc-action=listen&sb-hc-token=" +
      "SharedAccessSignature+sr%3Dhttps%253A%252F%252Fns%252Fhc%26sig%3Da%252Bb%253D%26se%3D1%26skn%3Dk",
  );
  assert.equal(withToken("wss://h/x", "a b"), "wss://h/x?sb-hc-token=a+b");
});

Deno.test("resourceUri is https, lowercased, entity unescaped, port kept", () => {
  assert.equal(resourceUri(AZ, "MyHC"), "https://my-ns.servicebus.windows.net/myhc");
  assert.equal(resourceUri(LOCAL, "a b"), "https://127.0.0.1:8080/a b");
});

Deno.test("relayUrl is scheme and host", () => {
  assert.equal(relayUrl(AZ), "wss://My-NS.servicebus.windows.net");
  assert.equal(relayUrl(LOCAL), "ws://127.0.0.1:8080");
});
