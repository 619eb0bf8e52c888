import assert from "node:assert/strict";
import { parseAllowlist } from "../../lib/tunnel/allowlist.ts";
import { UsageError } from "../../lib/errors.ts";
import { joinHostPort, splitHostPort } from "../../lib/net/host_port.ts";
import { cidrContains, formatIP, parseCidr, parseIP } from "../../lib/tunnel/ip.ts";

function allows(entries: string[], target: string): boolean {
  const list = parseAllowlist(entries);
  assert.ok(list);
  return list.allows(target);
}

Deno.test("allowlist: no entries means no list (everything permitted)", () => {
  assert.equal(parseAllowlist([]), null);
});

Deno.test("allowlist: reference §4.1 table", () => {
  const cases: [string[], string, boolean][] = [
    // `*` allows everything that splits; a target that does not split is denied even then.
    [["*"], "anything.example:1", true],
    [["*"], "[::1]:22", true],
    [["*"], "no-port", false],
    [["*"], "", false],
    // host:port, exact.
    [["10.0.0.5:22"], "10.0.0.5:22", true],
    [["10.0.0.5:22"], "10.0.0.5:23", false],
    [["10.0.0.5:22"], "10.0.0.6:22", false],
    // CIDR:port and CIDR:*.
    [["10.0.0.0/24:22"], "10.0.0.77:22", true],
    [["10.0.0.0/24:22"], "10.0.1.1:22", false],
    [["10.0.0.0/24:22"], "10.0.0.77:23", false],
    [["10.0.0.0/8:*"], "10.1.2.3:9999", true],
    [["10.0.0.5/24:*"], "10.0.0.200:1", true], // host bits in the entry are masked, as in Go
    // No DNS: names never match CIDRs or IPs, and the other way round.
    [["10.0.0.0/8:*"], "internal.corp:22", false],
    [["localhost:22"], "127.0.0.1:22", false],
    [["localhost:22"], "localhost:22", true],
    [["localhost:*"], "localhost:8080", true],
    [["127.0.0.1:*"], "127.0.0.1:5432", true],
    // Case-sensitive names; ports compared as strings (an entry like `host:022` is refused).
    [["Host:22"], "host:22", false],
    [["host:22"], "host:022", false],
    [["host:65535"], "host:65535", true],
    [["host:1"], "host:1", true],
    // `*:PORT` is any host on that port (Go compared `*` as a literal host and matched nothing).
    [["*:5"], "a:5", true],
    [["*:5"], "*:5", true],
    [["*:5"], "a:6", false],
    // Mixed lists.
    [["internal.corp:22", "10.0.0.0/8:*"], "internal.corp:22", true],
    [["internal.corp:22", "10.0.0.0/8:*"], "10.9.9.9:80", true],
    [["internal.corp:22", "10.0.0.0/8:*"], "other.corp:22", false],
    // IPv6, Go style (split at the last colon).
    [["::1:22"], "[::1]:22", true],
    [["::1/128:22"], "[::1]:22", true],
    [["fd00::/8:*"], "[fd00::5]:443", true],
    [["fd00::/8:*"], "[fe80::1]:443", false],
    // Bracketed IPv6 entries work here (they never matched in Go).
    [["[::1]:22"], "[::1]:22", true],
    [["[::1]:22"], "[0:0::1]:22", true],
    [["[::1]:22"], "[::1]:23", false],
    [["[fd00::/8]:*"], "[fd00::5]:443", true],
    [["[fd00::/8]:*"], "[fe80::1]:443", false],
    // IPv4-mapped IPv6 behaves as IPv4, and `::/0` does not contain IPv4 (Go's IPNet quirk).
    [["10.0.0.0/8:*"], "[::ffff:10.1.1.1]:80", true],
    [["::ffff:10.0.0.0/104:*"], "10.2.3.4:80", true],
    [["::/0:*"], "10.0.0.1:80", false],
    [["::/0:*"], "[2001:db8::1]:80", true],
    [["[::ffff:10.0.0.5]:22"], "10.0.0.5:22", true],
    // Targets with a zone are not IPs: literal comparison only.
    [["fe80::/10:*"], "[fe80::1%eth0]:22", false],
  ];
  for (const [entries, target, want] of cases) {
    assert.equal(allows(entries, target), want, `${JSON.stringify(entries)} vs ${target}`);
  }
});

Deno.test("allowlist: wildcard hosts `*:PORT`, `*.suffix:PORT` and `*.suffix:*`", () => {
  const cases: [string[], string, boolean][] = [
    [["*:22022"], "anything.example:22022", true],
    [["*:22022"], "10.1.2.3:22022", true],
    [["*:22022"], "[fd00::1]:22022", true],
    [["*:22022"], "10.1.2.3:22", false],
    [["*:22022"], "no-port", false],
    [["*.example.com:443"], "www.example.com:443", true],
    [["*.example.com:443"], "a.b.example.com:443", true],
    [["*.example.com:443"], "WWW.Example.COM:443", true],
    [["*.EXAMPLE.com:443"], "www.example.com:443", true],
    [["*.example.com:443"], "www.example.com:80", false],
    // The suffix itself is not under it, and names are compared literally, not by their DNS labels.
    [["*.example.com:443"], "example.com:443", false],
    [["*.example.com:443"], "badexample.com:443", false],
    [["*.example.com:443"], "www.example.com.evil:443", false],
    [["*.example.com:443"], ".example.com:443", false],
    [["*.corp:*"], "db.corp:5432", true],
    [["*.corp:*"], "db.corp.:5432", false],
    // IP literals are never names under a suffix, and names never match CIDRs (no DNS).
    [["*.0.0.1:*"], "127.0.0.1:22", false],
    [["*.0.0.1:*"], "x.0.0.1:22", true],
    [["*.corp:*", "10.0.0.0/8:22"], "10.0.0.1:22", true],
  ];
  for (const [entries, target, want] of cases) {
    assert.equal(allows(entries, target), want, `${JSON.stringify(entries)} vs ${target}`);
  }
});

Deno.test("allowlist: any other `*` is a startup error naming the entry", () => {
  const use = 'a wildcard host is "*" (any host) or "*.suffix" (names ending in .suffix)';
  const cases: [string, string][] = [
    ["a*b:22", `invalid --allow entry "a*b:22": "a*b": ${use}`],
    ["*example.com:443", `invalid --allow entry "*example.com:443": "*example.com": ${use}`],
    ["www.*.com:443", `invalid --allow entry "www.*.com:443": "www.*.com": ${use}`],
    ["*.*.com:443", `invalid --allow entry "*.*.com:443": "*.*.com": ${use}`],
    ["*.:443", `invalid --allow entry "*.:443": "*.": ${use}`],
    ["*..com:443", `invalid --allow entry "*..com:443": "*..com": ${use}`],
    ["*.com.:443", `invalid --allow entry "*.com.:443": "*.com.": ${use}`],
    ["**:22", `invalid --allow entry "**:22": "**": ${use}`],
    ["10.*.0.0/8:*", `invalid --allow entry "10.*.0.0/8:*": "10.*.0.0/8": ${use}`],
    [
      "*.example.com",
      'invalid --allow entry "*.example.com": missing port (use host:port, ' +
      "CIDR:port, CIDR:* or *)",
    ],
    [
      "*:08",
      `invalid --allow entry "*:08": port "08" has a leading zero: write it as 8 (ports ` +
      'are compared as text, so "08" would never match)',
    ],
    ["*.x:70000", 'invalid --allow entry "*.x:70000": port 70000 is above 65535'],
  ];
  for (const [entry, message] of cases) {
    assert.throws(() => parseAllowlist([entry]), (err: unknown) => {
      assert.ok(err instanceof UsageError);
      assert.equal(err.message, message);
      return true;
    }, entry);
  }
});

Deno.test("allowlist: values are split on commas and trimmed", () => {
  const list = parseAllowlist(["a:1,b:2", " c:3 "]);
  assert.deepEqual(list?.entries, ["a:1", "b:2", "c:3"]);
  assert.ok(list?.allows("b:2"));
  assert.ok(list?.allows("c:3"));
});

Deno.test("allowlist: malformed entries are usage errors", () => {
  for (
    const bad of [
      "",
      "10.0.0.5",
      "10.0.0.0/8",
      "10.0.0.0/33:22",
      "10.0.0.256/8:22",
      "fd00::/129:*",
      "nope/8:22",
      "host:",
      "host:abc",
      "host:-1",
      "host:0",
      "host:70000",
      ":22",
      "[::1]",
      "[::1]22",
      "[host]:22",
      "[1.2.3.4]:22",
      "[::1]:x",
      "a:1,,b:2",
    ]
  ) {
    assert.throws(() => parseAllowlist([bad]), UsageError, JSON.stringify(bad));
  }
  assert.throws(
    () => parseAllowlist(["10.0.0.5"]),
    {
      message:
        'invalid --allow entry "10.0.0.5": missing port (use host:port, CIDR:port, CIDR:* or *)',
    },
  );
});

Deno.test("allowlist: `*:*`, empty hosts and hosts with whitespace are refused with the fix", () => {
  const cases: [string[], string][] = [
    [["*:*"], 'invalid --allow entry "*:*": use "*" to allow every target'],
    [["10.0.0.5:22, *:*"], 'invalid --allow entry "*:*": use "*" to allow every target'],
    [[":*"], 'invalid --allow entry ":*": missing host'],
    [["my host:22"], 'invalid --allow entry "my host:22": the host must not contain whitespace'],
    [["a\tb:*"], 'invalid --allow entry "a\tb:*": the host must not contain whitespace'],
    [["a:1, ,y:1"], 'invalid --allow entry "": empty entry'],
  ];
  for (const [values, message] of cases) {
    assert.throws(() => parseAllowlist(values), (err: unknown) => {
      assert.ok(err instanceof UsageError);
      assert.equal(err.message, message);
      return true;
    }, JSON.stringify(values));
  }
});

Deno.test("allowlist: a port must be written as a target writes it, 1-65535", () => {
  const cases: [string, string][] = [
    [
      "host:080",
      'invalid --allow entry "host:080": port "080" has a leading zero: write it as 80 (ports are ' +
      'compared as text, so "080" would never match)',
    ],
    [
      "10.0.0.0/8:0022",
      'invalid --allow entry "10.0.0.0/8:0022": port "0022" has a leading zero: write it as 22 ' +
      '(ports are compared as text, so "0022" would never match)',
    ],
    [
      "[::1]:08080",
      'invalid --allow entry "[::1]:08080": port "08080" has a leading zero: write it as 8080 ' +
      '(ports are compared as text, so "08080" would never match)',
    ],
    ["host:65536", 'invalid --allow entry "host:65536": port 65536 is above 65535'],
    [
      "host:99999999999",
      'invalid --allow entry "host:99999999999": port 99999999999 is above 65535',
    ],
    ["host:0", 'invalid --allow entry "host:0": port 0 is out of range: ports are 1-65535'],
    ["host:000", 'invalid --allow entry "host:000": port 000 is out of range: ports are 1-65535'],
    ["host:+22", 'invalid --allow entry "host:+22": port must be * or a number 1-65535, got "+22"'],
    ["host:2e1", 'invalid --allow entry "host:2e1": port must be * or a number 1-65535, got "2e1"'],
    ["host:٢٢", 'invalid --allow entry "host:٢٢": port must be * or a number 1-65535, got "٢٢"'],
  ];
  for (const [entry, message] of cases) {
    assert.throws(() => parseAllowlist([entry]), (err: unknown) => {
      assert.ok(err instanceof UsageError);
      assert.equal(err.message, message);
      return true;
    }, entry);
  }
});

Deno.test("ip: parse like Go's net.ParseIP", () => {
  const ok = [
    "0.0.0.0",
    "255.255.255.255",
    "::",
    "::1",
    "1:2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7::",
    "::ffff:1.2.3.4",
    "::1.2.3.4",
    "2001:DB8::1",
    "1::2:3:4:5:6:7",
  ];
  for (const s of ok) assert.ok(parseIP(s), s);
  const bad = [
    "",
    "1.2.3",
    "1.2.3.4.5",
    "256.1.1.1",
    "010.0.0.1",
    "1.2.3.-1",
    "1::2::3",
    "1:2:3:4:5:6:7:8:9",
    "12345::",
    "1.2.3.4::",
    ":1::",
    "1::2:",
    "fe80::1%eth0",
    "g::1",
    "1:2:3:4:5:6:7:8::",
    "[::1]",
  ];
  for (const s of bad) assert.equal(parseIP(s), null, s);
  assert.deepEqual(parseIP("1.2.3.4"), new Uint8Array([1, 2, 3, 4]));
  assert.deepEqual(
    parseIP("::ffff:1.2.3.4"),
    new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 1, 2, 3, 4]),
  );
});

Deno.test("ip: format like Go's IP.String", () => {
  const cases: [string, string][] = [
    ["::", "::"],
    ["::1", "::1"],
    ["2001:DB8:0:0:0:0:0:1", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["1:0:0:0:0:0:0:8", "1::8"],
    ["1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"],
    ["1:0:0:2:0:0:0:3", "1:0:0:2::3"],
    ["::ffff:1.2.3.4", "1.2.3.4"],
    ["::1.2.3.4", "::102:304"],
    ["10.0.0.5", "10.0.0.5"],
  ];
  for (const [input, want] of cases) assert.equal(formatIP(parseIP(input)!), want, input);
});

Deno.test("ip: CIDR parsing and containment", () => {
  assert.equal(parseCidr("10.0.0.0"), null);
  assert.equal(parseCidr("10.0.0.0/"), null);
  assert.equal(parseCidr("10.0.0.0/x"), null);
  assert.ok(parseCidr("10.0.0.0/008"));
  const net = parseCidr("192.168.1.0/23")!;
  assert.ok(cidrContains(net, parseIP("192.168.0.255")!));
  assert.ok(!cidrContains(net, parseIP("192.168.2.0")!));
  assert.ok(cidrContains(parseCidr("0.0.0.0/0")!, parseIP("8.8.8.8")!));
  assert.ok(!cidrContains(parseCidr("0.0.0.0/0")!, parseIP("::1")!));
  assert.ok(cidrContains(parseCidr("::ffff:0:0/96")!, parseIP("1.2.3.4")!));
});

Deno.test("ip: splitHostPort and joinHostPort like Go", () => {
  assert.deepEqual(splitHostPort("[::1]:22"), { host: "::1", port: "22" });
  assert.deepEqual(splitHostPort("host:"), { host: "host", port: "" });
  assert.deepEqual(splitHostPort(":80"), { host: "", port: "80" });
  for (const bad of ["host", "a:b:c", "[::1]", "[a]b:1", "[::1]:2:3", "a[b:1", "a]b:1", ""]) {
    assert.equal(splitHostPort(bad), null, bad);
  }
  assert.equal(joinHostPort("::1", 22), "[::1]:22");
  assert.equal(joinHostPort("example.com", "443"), "example.com:443");
});
