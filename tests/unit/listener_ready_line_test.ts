import assert from "node:assert/strict";
import { allowlistSummary, logReady } from "../../lib/listener/ready_line.ts";
import { getLogger } from "../../lib/observe/log.ts";
import { parseRelayEndpoint } from "../../lib/relay/endpoint.ts";
import { parseAllowlist } from "../../lib/tunnel/allowlist.ts";
import { withLogs } from "../helpers/logs.ts";

Deno.test("allowlistSummary: any target, one entry, a few, and a long list cut after five", () => {
  assert.equal(allowlistSummary(null), "any target (*)");
  assert.equal(allowlistSummary(parseAllowlist(["127.0.0.1:22,*"])), "any target (*)");
  assert.equal(allowlistSummary(parseAllowlist(["127.0.0.1:22"])), "1 entry: 127.0.0.1:22");
  assert.equal(
    allowlistSummary(parseAllowlist(["10.0.0.0/8:*", "127.0.0.1:22,*:443"])),
    "3 entries: 10.0.0.0/8:*, 127.0.0.1:22, *:443",
  );
  const seven = parseAllowlist(["h1:1,h2:2,h3:3,h4:4,h5:5,h6:6,h7:7"]);
  assert.equal(allowlistSummary(seven), "7 entries: h1:1, h2:2, h3:3, h4:4, h5:5, …");
});

Deno.test("logReady: one INFO line; auth from the mode, else the provider's kind", async () => {
  const facts = {
    endpoint: parseRelayEndpoint("myns"),
    hyco: "ssh",
    allowlist: parseAllowlist(["127.0.0.1:22"]),
    maxConnections: 0,
    maxWarmLegs: 16,
    tokensKind: "sas" as const,
  };
  const lines = await withLogs((lines) => {
    logReady(getLogger(), { ...facts, auth: { kind: "sas", keyName: "listen" } });
    logReady(getLogger(), facts);
    return Promise.resolve(lines);
  });
  assert.equal(lines.length, 2);
  const common = 'level=INFO msg="listener ready" relay_url=wss://myns.servicebus.windows.net ' +
    'hyco=ssh allow="1 entry: 127.0.0.1:22" max_connections=unlimited max_warm_legs=16 auth=sas';
  assert.ok(lines[0].includes(`${common} key_name=listen`), lines[0]);
  assert.ok(lines[1].trimEnd().endsWith(common), lines[1]);
});
