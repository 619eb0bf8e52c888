import assert from "node:assert/strict";
import { DEFAULT_RELAY_SUFFIX, parseRelayEndpoint } from "../../lib/relay/endpoint.ts";
import { UsageError } from "../../lib/errors.ts";

const S = DEFAULT_RELAY_SUFFIX;
const CN = ".servicebus.chinacloudapi.cn";
const GOV = ".servicebus.usgovcloudapi.net";

Deno.test("parseRelayEndpoint accepts every reference §1.5 form", () => {
  const cases: [input: string, suffix: string | undefined, scheme: "wss" | "ws", host: string][] = [
    ["my-relay", undefined, "wss", "my-relay.servicebus.windows.net"],
    ["my-relay", "", "wss", "my-relay.servicebus.windows.net"],
    ["my-relay", S, "wss", "my-relay.servicebus.windows.net"],
    ["  my-relay  ", S, "wss", "my-relay.servicebus.windows.net"],
    ["\tmy-relay\n", S, "wss", "my-relay.servicebus.windows.net"],
    ["my-relay", CN, "wss", "my-relay.servicebus.chinacloudapi.cn"],
    ["my-relay", GOV, "wss", "my-relay.servicebus.usgovcloudapi.net"],
    ["my-relay.servicebus.windows.net", S, "wss", "my-relay.servicebus.windows.net"],
    ["my-relay.servicebus.windows.net", CN, "wss", "my-relay.servicebus.windows.net"],
    ["my-relay.servicebus.chinacloudapi.cn", S, "wss", "my-relay.servicebus.chinacloudapi.cn"],
    ["my.relay", S, "wss", "my.relay"],
    ["sb://my-relay.servicebus.windows.net", S, "wss", "my-relay.servicebus.windows.net"],
    ["sb://my-relay.servicebus.windows.net/", S, "wss", "my-relay.servicebus.windows.net"],
    ["sb://my-relay", S, "wss", "my-relay.servicebus.windows.net"],
    ["sb://my-relay", CN, "wss", "my-relay.servicebus.chinacloudapi.cn"],
    ["sb://my-relay.servicebus.windows.net:5671", S, "wss", "my-relay.servicebus.windows.net:5671"],
    ["sb://my-relay.servicebus.windows.net:443", S, "wss", "my-relay.servicebus.windows.net:443"],
    ["SB://my-relay.servicebus.windows.net", S, "wss", "my-relay.servicebus.windows.net"],
    ["wss://my-relay.servicebus.windows.net", S, "wss", "my-relay.servicebus.windows.net"],
    ["wss://my-relay.servicebus.windows.net:443", S, "wss", "my-relay.servicebus.windows.net"],
    ["WSS://my-relay.servicebus.windows.net", S, "wss", "my-relay.servicebus.windows.net"],
    ["wss://my-relay", S, "wss", "my-relay.servicebus.windows.net"],
    ["wss://my-relay:443", S, "wss", "my-relay.servicebus.windows.net"],
    ["wss://relay.example.com:8443", S, "wss", "relay.example.com:8443"],
    ["wss://relay.example.com:8443/", S, "wss", "relay.example.com:8443"],
    ["wss://localhost:8443", S, "wss", "localhost:8443"],
    ["wss://127.0.0.1:9443", S, "wss", "127.0.0.1:9443"],
    ["wss://[::1]:9443", S, "wss", "[::1]:9443"],
    ["wss://[::1]:443", S, "wss", "[::1]"],
    ["wss://relay.example.com:65535", S, "wss", "relay.example.com:65535"],
    ["wss://relay.example.com:1", S, "wss", "relay.example.com:1"],
    ["https://my-relay.servicebus.windows.net", S, "wss", "my-relay.servicebus.windows.net"],
    ["https://my-relay.servicebus.windows.net:443/", S, "wss", "my-relay.servicebus.windows.net"],
    ["https://relay.example.com:8443", S, "wss", "relay.example.com:8443"],
    ["HTTPS://My-Relay.servicebus.windows.net", S, "wss", "My-Relay.servicebus.windows.net"],
    // Local relays over plain WebSocket (not in Go): never get the namespace suffix.
    ["ws://localhost:8080", S, "ws", "localhost:8080"],
    ["ws://127.0.0.1:8080/", S, "ws", "127.0.0.1:8080"],
    ["ws://[::1]:8080", S, "ws", "[::1]:8080"],
    ["ws://localhost", S, "ws", "localhost"],
    ["ws://localhost:80", S, "ws", "localhost"],
    ["ws://relay.lan:443", S, "ws", "relay.lan:443"],
  ];
  for (const [input, suffix, scheme, host] of cases) {
    assert.deepEqual(parseRelayEndpoint(input, suffix), { scheme, host }, `${input} ${suffix}`);
  }
});

Deno.test("parseRelayEndpoint rejects what reference §1.5 rejects", () => {
  const bad = [
    "",
    "   ",
    "sb://",
    "wss://",
    "://invalid",
    "1wss://host",
    "http://localhost:8080/",
    "http://relay.example.com",
    "ftp://relay.example.com:8443",
    "amqp://relay.example.com",
    "localhost:8080",
    "127.0.0.1:8080",
    "::1",
    "my-relay:443",
    "wss://user@relay.example.com",
    "wss://user:pw@relay.example.com",
    "wss://relay.example.com?",
    "wss://relay.example.com/?x=1",
    "wss://relay.example.com?x=1",
    "wss://relay.example.com#",
    "wss://relay.example.com/#frag",
    "wss://relay.example.com/path",
    "wss://relay.example.com//",
    "wss://relay.example.com/$hc/hyco",
    "wss://relay.example.com:",
    "wss://relay.example.com:/",
    "wss://relay.example.com:0",
    "wss://relay.example.com:65536",
    "wss://relay.example.com:99999",
    "wss://relay.example.com:-1",
    "wss://relay.example.com:abc",
    "wss://relay.example.com:8443:1",
    "wss://:8443",
    "wss://[::1",
    "wss://[::1]x",
    "wss://ho st.example.com",
    "my relay",
    "ns.example.com/path",
    "ws://",
    "ws://localhost:0",
  ];
  for (const input of bad) {
    assert.throws(
      () => parseRelayEndpoint(input, S),
      (err: unknown) => {
        assert.ok(err instanceof UsageError, input);
        assert.equal(err.message, `invalid relay endpoint: ${JSON.stringify(input)}`);
        return true;
      },
      input,
    );
  }
});
