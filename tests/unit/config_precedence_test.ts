/** Flag > environment > file > default for the `up` file's relay keys and globals. */
import assert from "node:assert/strict";
import { ConfigError } from "../../lib/config/issue.ts";
import { ranked, resolveEntries } from "../../lib/config/precedence.ts";
import { validateConfig } from "../../lib/config/validate.ts";

const FILE = `relay: file-ns
hyco: file-hyco
relay-ca-cert: certs/ca.pem
tunnels:
  - name: plain
    socks5-proxy: 127.0.0.1:1080
  - name: own
    socks5-proxy: 127.0.0.1:1081
    hyco: own-hyco
    relay-ca-cert: /etc/own.pem
  - name: web
    http-proxy: 127.0.0.1:3128
    proxy-auth-file: auth.txt
`;

const config = () => validateConfig(FILE, "/etc/aztunnel/up.yaml");

Deno.test("precedence: the file's top level is the default of every entry", () => {
  const [plain, own] = resolveEntries(config(), {});
  assert.deepEqual(plain.relay, {
    relay: "file-ns",
    hyco: "file-hyco",
    relaySuffix: undefined,
    relayCaCert: "/etc/aztunnel/certs/ca.pem",
  });
  assert.equal(own.relay.hyco, "own-hyco");
  assert.equal(own.relay.relayCaCert, "/etc/own.pem");
});

Deno.test("precedence: a flag or environment value replaces the top level, not an entry's own", () => {
  const [plain, own] = resolveEntries(config(), {
    relay: "ws://127.0.0.1:1",
    hyco: "flag-hyco",
    "relay-ca-cert": "rel/ca.pem",
  });
  assert.equal(plain.relay.relay, "ws://127.0.0.1:1");
  assert.equal(plain.relay.hyco, "flag-hyco");
  // A flag's path is the user's, relative to the working directory.
  assert.equal(plain.relay.relayCaCert, "rel/ca.pem");
  assert.equal(own.relay.hyco, "own-hyco");
  assert.equal(own.relay.relayCaCert, "/etc/own.pem");
});

Deno.test("precedence: paths in the file are relative to the file", () => {
  const web = resolveEntries(config(), {})[2];
  assert.equal(web.values["proxy-auth-file"], "/etc/aztunnel/auth.txt");
});

Deno.test("precedence: an entry without hyco or relay anywhere is an error at the entry", () => {
  const c = validateConfig(
    "tunnels:\n  - name: a\n    socks5-proxy: :1\n    relay: ns\n  - name: b\n    socks5-proxy: :2\n",
    "up.yaml",
  );
  assert.throws(() => resolveEntries(c, {}), (err) => {
    assert.ok(err instanceof ConfigError);
    assert.deepEqual(err.lines(), [
      'up.yaml:2:5: "a" has no hyco: set it in the entry or at the top of the file, or use --hyco / AZTUNNEL_HYCO_NAME',
      'up.yaml:5:5: "b" has no hyco: set it in the entry or at the top of the file, or use --hyco / AZTUNNEL_HYCO_NAME',
      'up.yaml:5:5: "b" has no relay: set it in the entry or at the top of the file, or use --relay / AZTUNNEL_RELAY_NAME',
    ]);
    return true;
  });
  assert.equal(resolveEntries(c, { hyco: "h", relay: "ns2" })[1].relay.relay, "ns2");
});

Deno.test("precedence: a bad relay is named where it was written, or as the flag", () => {
  const c = validateConfig(
    "relay: 'a b:1'\nhyco: h\ntunnels:\n  - name: a\n    socks5-proxy: :1\n",
    "up.yaml",
  );
  assert.throws(() => resolveEntries(c, {}), /up\.yaml:1:1: invalid relay endpoint: "a b:1"/);
  assert.throws(
    () => resolveEntries(c, { relay: "x:1" }),
    /up\.yaml:4:5: invalid relay endpoint: "x:1" \(from --relay \/ AZTUNNEL_RELAY_NAME\)/,
  );
});

Deno.test("precedence: globals: a flag or its environment variable beats the file, a default does not", () => {
  assert.equal(ranked("cli", "debug", "warn"), "debug");
  assert.equal(ranked("env", "127.0.0.1:1", "127.0.0.1:2"), "127.0.0.1:1");
  assert.equal(ranked("default", "info", "warn"), "warn");
  assert.equal(ranked(undefined, undefined, "127.0.0.1:2"), "127.0.0.1:2");
  assert.equal(ranked("default", "info", undefined), "info");
});
