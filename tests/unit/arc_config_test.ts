import assert from "node:assert/strict";
import {
  arcKeepAlive,
  armScope,
  parseArcPort,
  parseArcRelayUrl,
  parseArcService,
  parseArmEndpoint,
  parseResourceId,
  resolveArcPort,
} from "../../lib/arc/config.ts";
import { UsageError } from "../../lib/errors.ts";
import { isLoopback } from "../../lib/net/loopback.ts";

const RID = "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.HybridCompute/machines/vm1";

Deno.test("--service: SSH or WAC in any case, anything else is a usage error", () => {
  assert.equal(parseArcService("SSH"), "SSH");
  assert.equal(parseArcService("wac"), "WAC");
  for (const bad of ["", "RDP", "ssh2"]) {
    assert.throws(() => parseArcService(bad), UsageError);
  }
  assert.throws(() => parseArcService("rdp"), {
    message: 'invalid --service "rdp": must be SSH or WAC',
  });
});

Deno.test("--port: 1 to 65535", () => {
  assert.equal(parseArcPort("22"), 22);
  assert.equal(parseArcPort(443), 443);
  for (const bad of ["0", "65536", "-1", "22x", "", "1.5"]) {
    assert.throws(() => parseArcPort(bad), UsageError, bad);
  }
});

Deno.test("--resource-id: required, with the Go message, shape checked, trailing / dropped", () => {
  assert.throws(() => parseResourceId(undefined), {
    message: "resource ID is required: use --resource-id or set AZTUNNEL_ARC_RESOURCE_ID",
  });
  assert.throws(() => parseResourceId("  "), UsageError);
  assert.equal(parseResourceId(RID + "/"), RID);
  assert.equal(
    parseResourceId(
      "/subscriptions/s/resourceGroups/g/providers/Microsoft.ConnectedVMwarevSphere/virtualMachines/v",
    ),
    "/subscriptions/s/resourceGroups/g/providers/Microsoft.ConnectedVMwarevSphere/virtualMachines/v",
  );
  for (
    const bad of [
      "vm1",
      "/subscriptions/s",
      `${RID}?x=1`,
      "subscriptions/s/resourceGroups/g/providers/a/b/c",
    ]
  ) {
    assert.throws(() => parseResourceId(bad), UsageError, bad);
  }
});

Deno.test("--arm-endpoint: https anywhere, http only on loopback, origin only", () => {
  assert.equal(parseArmEndpoint(undefined).href, "https://management.azure.com/");
  assert.equal(parseArmEndpoint("").href, "https://management.azure.com/");
  assert.equal(
    parseArmEndpoint("https://management.usgovcloudapi.net/").href,
    "https://management.usgovcloudapi.net/",
  );
  assert.equal(parseArmEndpoint("http://127.0.0.1:8080").href, "http://127.0.0.1:8080/");
  assert.equal(parseArmEndpoint("http://localhost:1").href, "http://localhost:1/");
  assert.equal(parseArmEndpoint("http://[::1]:1").href, "http://[::1]:1/");
  assert.throws(() => parseArmEndpoint("http://management.azure.com"), {
    message: /plain http:\/\/ is allowed only for loopback hosts/,
  });
  for (
    const bad of [
      "ftp://x",
      "management.azure.com",
      "https://x/api",
      "https://x/?a=b",
      "https://u:p@x",
    ]
  ) {
    assert.throws(() => parseArmEndpoint(bad), UsageError, bad);
  }
});

Deno.test("the ARM token scope follows the endpoint", () => {
  assert.equal(armScope(parseArmEndpoint(undefined)), "https://management.azure.com/.default");
  assert.equal(armScope(new URL("http://127.0.0.1:9/")), "http://127.0.0.1:9/.default");
});

Deno.test("AZTUNNEL_ARC_RELAY_URL: ws on loopback, wss anywhere, base only", () => {
  assert.deepEqual(parseArcRelayUrl("ws://127.0.0.1:8080"), {
    scheme: "ws",
    host: "127.0.0.1:8080",
  });
  assert.deepEqual(parseArcRelayUrl("wss://relay.example:8443/"), {
    scheme: "wss",
    host: "relay.example:8443",
  });
  for (const bad of ["http://127.0.0.1", "ws://relay.example", "ws://127.0.0.1/$hc/x", "nope"]) {
    assert.throws(() => parseArcRelayUrl(bad), UsageError, bad);
  }
});

Deno.test("loopback hosts (plain http/ws for ARM and the relay override)", () => {
  for (const h of ["localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]", "LOCALHOST"]) {
    assert.ok(isLoopback(h), h);
  }
  for (const h of ["0.0.0.0", "10.0.0.1", "localhost.example", "128.0.0.1"]) {
    assert.ok(!isLoopback(h), h);
  }
});

Deno.test("--port absent: 22 for SSH, 6516 for WAC; an explicit port always wins", () => {
  assert.equal(resolveArcPort(undefined, "SSH"), 22);
  assert.equal(resolveArcPort(undefined, "WAC"), 6516);
  assert.equal(resolveArcPort("22", "WAC"), 22);
  assert.equal(resolveArcPort("443", "WAC"), 443);
  assert.equal(resolveArcPort("2222", "SSH"), 2222);
  assert.throws(() => resolveArcPort("0", "WAC"), {
    message: 'invalid --port "0": must be 1-65535',
  });
});

Deno.test("arc --tcp-keepalive: keepalive stays on for 0 and negative values, bad text is usage", () => {
  for (const v of ["30s", "1s", "0", "-1s", "-0"]) assert.equal(arcKeepAlive(v), true, v);
  assert.throws(() => arcKeepAlive("soon"), UsageError);
});
