import assert from "node:assert/strict";
import {
  acceptAddressPolicy,
  parseAcceptHost,
  refuseAcceptAddress,
} from "../../lib/relay/accept_address.ts";
import { parseRelayEndpoint } from "../../lib/relay/endpoint.ts";

const path = "/$hc/hc?sb-hc-action=accept&sb-hc-id=abc_G1";

Deno.test("accept addresses on an Azure namespace: its gateway hosts over wss only", () => {
  const policy = acceptAddressPolicy(parseRelayEndpoint("contoso"));
  for (
    const ok of [
      "wss://contoso.servicebus.windows.net",
      "wss://g17-prod-by3-010-sb.servicebus.windows.net",
      "wss://G17-PROD.ServiceBus.Windows.Net:443",
    ]
  ) {
    assert.equal(refuseAcceptAddress(ok + path, policy), null, ok);
  }
  const refused: [string, RegExp][] = [
    [
      "ws://g17.servicebus.windows.net",
      /^scheme ws:\/\/ is not allowed when the relay is wss:\/\//,
    ],
    ["ws://10.0.0.5:80", /^scheme ws:\/\/ is not allowed/],
    [
      "wss://10.0.0.5",
      /^host 10\.0\.0\.5 is neither the relay's host contoso\.servicebus\.windows\.net nor under servicebus\.windows\.net/,
    ],
    ["wss://evilservicebus.windows.net", /^host evilservicebus\.windows\.net is neither/],
    ["wss://servicebus.windows.net.evil.example", /is neither/],
    ["wss://g1.servicebus.windows.net:8443", /^port 8443 is not the relay's port 443$/],
    ["wss://user:pw@g1.servicebus.windows.net", /^the address carries credentials$/],
    ["https://g1.servicebus.windows.net", /^scheme https:\/\/ is not a WebSocket scheme$/],
    ["not a url", /^not a URL$/],
  ];
  for (const [address, reason] of refused) {
    assert.match(refuseAcceptAddress(address + path, policy) ?? "", reason, address);
  }
});

Deno.test("accept addresses honour --relay-suffix and a custom endpoint's parent domain", () => {
  const sovereign = acceptAddressPolicy(parseRelayEndpoint("ns", ".servicebus.chinacloudapi.cn"), {
    suffix: ".servicebus.chinacloudapi.cn",
  });
  assert.equal(refuseAcceptAddress(`wss://g1.servicebus.chinacloudapi.cn${path}`, sovereign), null);
  assert.match(
    refuseAcceptAddress(`wss://g1.servicebus.windows.net${path}`, sovereign)!,
    /is neither/,
  );

  const custom = acceptAddressPolicy(parseRelayEndpoint("wss://relay.example.com:8443"));
  assert.equal(refuseAcceptAddress(`wss://gw2.example.com:8443${path}`, custom), null);
  assert.match(
    refuseAcceptAddress(`wss://gw2.example.com${path}`, custom)!,
    /port 443 is not the relay's port 8443/,
  );
  assert.match(
    refuseAcceptAddress(`wss://example.org:8443${path}`, custom)!,
    /nor under example\.com/,
  );

  // A two-label host has no parent domain worth trusting (`.com`).
  const short = acceptAddressPolicy(parseRelayEndpoint("wss://example.com"));
  assert.equal(short.domain, null);
  assert.match(
    refuseAcceptAddress(`wss://other.com${path}`, short)!,
    /^host other\.com is neither the relay's host example\.com \(/,
  );
});

Deno.test("accept addresses on a local relay: its own host and port, plus the named hosts", () => {
  const ep = parseRelayEndpoint("ws://localhost:7000");
  const policy = acceptAddressPolicy(ep, { extraHosts: ["127.0.0.2", "[::1]:7001"] });
  assert.equal(refuseAcceptAddress(`ws://localhost:7000${path}`, policy), null);
  assert.equal(refuseAcceptAddress(`wss://LOCALHOST:7000${path}`, policy), null);
  assert.equal(refuseAcceptAddress(`ws://127.0.0.2:9999${path}`, policy), null);
  assert.equal(refuseAcceptAddress(`ws://[::1]:7001${path}`, policy), null);
  assert.match(
    refuseAcceptAddress(`ws://[::1]:7002${path}`, policy)!,
    /host \[::1\] is neither the relay's host localhost \(name it with --relay-accept-host/,
  );
  assert.match(
    refuseAcceptAddress(`ws://localhost:22${path}`, policy)!,
    /^port 22 is not the relay's port 7000$/,
  );
  assert.match(
    refuseAcceptAddress(`ws://127.0.0.1:7000${path}`, policy)!,
    /host 127\.0\.0\.1 is neither/,
  );

  const ip = acceptAddressPolicy(parseRelayEndpoint("ws://127.0.0.1"));
  assert.equal(ip.relayPort, "80");
  assert.equal(ip.domain, null);
  assert.equal(refuseAcceptAddress(`ws://127.0.0.1${path}`, ip), null);
  assert.match(refuseAcceptAddress(`ws://127.0.0.1:81${path}`, ip)!, /port 81/);
});

Deno.test("parseAcceptHost takes host or host:port and nothing else", () => {
  assert.deepEqual(parseAcceptHost("127.0.0.2"), { host: "127.0.0.2", port: null });
  assert.deepEqual(parseAcceptHost(" GW.Example.com:8443 "), {
    host: "gw.example.com",
    port: "8443",
  });
  assert.deepEqual(parseAcceptHost("[::1]:80"), { host: "[::1]", port: "80" });
  for (
    const bad of [
      "",
      "a/b",
      "user@host",
      "host:0",
      "host:65536",
      "host:",
      "ws://host",
      "[::1",
      "h?x",
    ]
  ) {
    assert.throws(() => parseAcceptHost(bad), /invalid accept host/, bad);
  }
});
