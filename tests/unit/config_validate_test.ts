/** The `up` file's validation: what is accepted, and each refusal at its exact line and column. */
import assert from "node:assert/strict";
import { ConfigError } from "../../lib/config/issue.ts";
import type { EntryKind } from "../../lib/config/types.ts";
import { validateConfig } from "../../lib/config/validate.ts";

/** The `line:col: message` lines validateConfig throws for `text`. */
function problems(text: string, kinds?: readonly EntryKind[]): string[] {
  try {
    validateConfig(text, "up.yaml", { kinds });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(err.code, "usage");
    return err.lines().map((l) => l.replace(/^up\.yaml:/, ""));
  }
  assert.fail("expected a ConfigError");
}

const ISSUE_EXAMPLE = `relay: my-ns
hyco: my-hyco
listeners:
  - allow: ["10.0.0.0/8:*"]
    max-connections: 100
tunnels:
  - name: db
    port-forward: 10.0.0.5:5432
    bind: 127.0.0.1:15432
  - name: browse
    socks5-proxy: 127.0.0.1:1080
  - name: web
    http-proxy: 127.0.0.1:3128
    hyco: other-hyco
`;

Deno.test("config: the issue's example is read with every key and position", () => {
  const c = validateConfig(ISSUE_EXAMPLE, "up.yaml");
  assert.deepEqual(c.relay, { relay: "my-ns", hyco: "my-hyco" });
  assert.deepEqual(c.at.hyco, { line: 2, col: 1 });
  assert.deepEqual(c.entries.map((e) => [e.kind, e.name]), [
    ["listener", "listener-1"],
    ["port-forward", "db"],
    ["socks5-proxy", "browse"],
    ["http-proxy", "web"],
  ]);
  assert.deepEqual(c.entries[0].values, { allow: ["10.0.0.0/8:*"], "max-connections": "100" });
  assert.deepEqual(c.entries[0].pos, { line: 4, col: 5 });
  assert.deepEqual(c.entries[3].values.hyco, "other-hyco");
  assert.deepEqual(c.entries[3].at.hyco, { line: 14, col: 5 });
});

Deno.test("config: globals, lists as comma text, booleans and numbers as text", () => {
  const c = validateConfig(
    `log-level: DEBUG
metrics-addr: 127.0.0.1:9090
listeners:
  - name: l
    allow: 127.0.0.1:22,127.0.0.1:80
    relay-accept-host: [relay.example:443]
    drain-timeout: 0
tunnels:
  - name: s
    socks5-proxy: :1080
    gateway: true
    pool-max: 0
`,
    "up.yaml",
  );
  assert.deepEqual(c.globals, { "log-level": "DEBUG", "metrics-addr": "127.0.0.1:9090" });
  assert.deepEqual(c.entries[0].values.allow, ["127.0.0.1:22,127.0.0.1:80"]);
  assert.deepEqual(c.entries[0].values["drain-timeout"], "0");
  assert.equal(c.entries[1].values.gateway, true);
  assert.equal(c.entries[1].values["pool-max"], "0");
});

Deno.test("config: YAML syntax errors and duplicate keys are named where they are", () => {
  assert.deepEqual(problems("tunnels: [\n"), [
    "2:1: Flow sequence in block collection must be sufficiently indented and end with a ]",
  ]);
  assert.deepEqual(problems("tunnels:\n  - name: a\n   bad\n"), [
    "3:1: Sequence item without - indicator",
  ]);
  assert.deepEqual(problems("hyco: a\nhyco: b\ntunnels: []\n"), ["2:1: Map keys must be unique"]);
});

Deno.test("config: unknown keys, wrong shapes and values their flag refuses", () => {
  assert.deepEqual(
    problems(`relay: ns
hyco: [a]
listeners:
  - allow: ["10.0.0.0/8"]
    max-connections: lots
    connect-timeout: soon
tunnels:
  - name: db
    port-forward: 10.0.0.5
    bind: 127.0.0.1:15432
    bindd: 1
  - name: s
    socks5-proxy: 127.0.0.1:99999
    gateway: yes
`),
    [
      '2:7: "hyco" must be a single value',
      '4:12: invalid --allow entry "10.0.0.0/8": missing port (use host:port, CIDR:port, CIDR:* or *)',
      '5:22: invalid max-connections "lots": expected a number >= 0',
      '6:22: invalid connect-timeout "soon": expected a duration like 30s, 1m30s or 500ms',
      '9:19: invalid target "10.0.0.5": expected host:port',
      '11:5: unknown key "bindd" in tunnels[1]',
      '13:19: invalid socks5-proxy bind address "127.0.0.1:99999": expected host:port',
      '14:14: "gateway" must be true or false',
    ],
  );
});

Deno.test("config: secrets inline are refused at their line, keys and values alike", () => {
  const lines = problems(`relay: ns
hyco: h
key: abc
tunnels:
  - name: web
    http-proxy: 127.0.0.1:3128
    proxy-auth: user:pw
  - name: db
    port-forward: 127.0.0.1:5432
    bind: 127.0.0.1:15432
    relay: "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=p;SharedAccessKey=x"
    sas-key: x
    password: y
    token: z
`);
  assert.deepEqual(lines.map((l) => l.split(": ")[0] + ": " + l.split(": ")[1].split(" ")[0]), [
    '3:1: "key"',
    '7:5: "proxy-auth"',
    "11:12: the",
    '12:5: "sas-key"',
    '13:5: "password"',
    '14:5: "token"',
  ]);
  assert.match(
    lines[0],
    /secrets must not be written in the config file: put relay credentials in the environment \(AZTUNNEL_KEY_NAME and AZTUNNEL_KEY/,
  );
  assert.match(lines[2], /holds a shared access key or signature/);
});

Deno.test("config: a file that names a file is fine: proxy-auth-file on an http-proxy only", () => {
  const ok =
    "hyco: h\ntunnels:\n  - name: web\n    http-proxy: 127.0.0.1:3128\n    proxy-auth-file: auth.txt\n";
  assert.equal(validateConfig(ok, "up.yaml").entries[0].values["proxy-auth-file"], "auth.txt");
  assert.deepEqual(
    problems("tunnels:\n  - name: s\n    socks5-proxy: 127.0.0.1:1\n    proxy-auth-file: a\n"),
    ["4:5: proxy-auth-file is for http-proxy tunnels only"],
  );
});

Deno.test("config: pool-streams is a count up to what a listener carries on one leg", () => {
  const entry = (v: string) =>
    `tunnels:\n  - name: s\n    socks5-proxy: 127.0.0.1:1\n    pool-streams: ${v}\n`;
  for (const ok of ["0", "32"]) {
    assert.equal(validateConfig(entry(ok), "up.yaml").entries[0].values["pool-streams"], ok);
  }
  assert.deepEqual(problems(entry("33")), [
    "4:5: pool-streams 33 is more than a listener carries on one leg (32)",
  ]);
  assert.equal(problems(entry("many")).length, 1);
});

Deno.test("config: tunnel shape: one kind, a name, bind for port-forward only, names unique", () => {
  assert.deepEqual(
    problems(`tunnels:
  - name: a
  - socks5-proxy: 127.0.0.1:1080
  - name: b
    port-forward: x:1
    socks5-proxy: 127.0.0.1:1081
  - name: c
    port-forward: x:1
  - name: d
    socks5-proxy: 127.0.0.1:1082
    bind: 127.0.0.1:1083
  - name: e
    socks5-proxy: 127.0.0.1:1084
    pool-min: 5
    pool-max: 2
  - name: f
    socks5-proxy: 127.0.0.1:1085
  - name: f
    socks5-proxy: 127.0.0.1:1086
  - name: "no spaces"
    socks5-proxy: 127.0.0.1:1087
`),
    [
      "2:5: tunnels[1] needs one of port-forward, socks5-proxy, http-proxy",
      "3:5: tunnels[2] needs a name",
      "6:5: tunnels[3] has both port-forward and socks5-proxy: one kind per tunnel",
      "8:5: tunnels[4] needs bind: the local host:port the port-forward listens on",
      `11:5: socks5-proxy's own value is its bind address: drop "bind"`,
      "14:5: pool-min 5 is more than pool-max 2",
      '18:5: duplicate name "f" (first at line 16)',
      '20:5: invalid name "no spaces": letters, digits, ".", "_" and "-" only',
    ],
  );
});

Deno.test("config: listeners get listener-N names; a listener's name clashes like any", () => {
  const c = validateConfig("hyco: h\nlisteners:\n  - {}\n  - name: edge\n  - {}\n", "up.yaml");
  assert.deepEqual(c.entries.map((e) => e.name), ["listener-1", "edge", "listener-3"]);
  assert.deepEqual(
    problems("listeners:\n  - {}\ntunnels:\n  - name: listener-1\n    socks5-proxy: :1\n"),
    ['4:5: duplicate name "listener-1" (first at line 2)'],
  );
});

Deno.test("config: an empty file, a non-map, no entries, and kinds this build cannot run", () => {
  assert.deepEqual(problems(""), ["1:1: the file is empty: add listeners: or tunnels:"]);
  assert.deepEqual(problems("- a\n"), ["1:1: the file must be a map of keys"]);
  assert.deepEqual(problems("relay: ns\n"), ["1:1: nothing to run: add listeners: or tunnels:"]);
  assert.deepEqual(problems("tunnels: {}\n"), ["1:10: tunnels must be a list"]);
  assert.deepEqual(problems("listeners:\n  - 3\n"), [
    "2:5: each of listeners must be a map of keys",
  ]);
  assert.deepEqual(
    problems("tunnels:\n  - name: w\n    http-proxy: :3128\n", ["listener", "socks5-proxy"]),
    ["3:5: http-proxy is not supported yet by this build"],
  );
});
