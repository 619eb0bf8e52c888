/** The CLI teaching its use: help pages and exit codes, shell completion, and flags that cannot work. */
import assert from "node:assert/strict";
import { run, runCli } from "../helpers/proc.ts";

const RELAY = ["--relay", "ws://127.0.0.1:9", "--hyco", "h"];
const SAS = { AZTUNNEL_KEY_NAME: "k", AZTUNNEL_KEY: "v" };

Deno.test("help: `aztunnel help [command]` exits 0 and --help shows modes, auth, env and examples", async () => {
  const [top, help, sub, nested, parent] = await Promise.all([
    runCli(["--help"]),
    runCli(["help"]),
    runCli(["help", "relay-listener"]),
    runCli(["relay-sender", "help", "connect"]),
    runCli(["relay-sender"]),
  ]);
  for (const r of [top, help, sub, nested]) assert.equal(r.code, 0, r.stderr);
  assert.equal(help.text, top.text);
  for (const heading of ["Modes:", "Authentication", "Environment:", "Examples:"]) {
    assert.match(top.text, new RegExp(`^${heading}`, "m"), heading);
  }
  for (
    const needle of ["AZTUNNEL_KEY_NAME and AZTUNNEL_KEY", "DefaultAzureCredential", "az login"]
  ) {
    assert.ok(top.text.includes(needle), needle);
  }
  assert.match(top.text, /--log-level warn relay-sender connect %h:%p/);
  assert.match(top.text, /aztunnel completion bash\|zsh\|fish/);
  // A parent without its subcommand is still a usage error (help on stderr).
  assert.equal(parent.code, 2, parent.stderr);
  assert.match(parent.stderr, /^Usage: aztunnel relay-sender/m);
});

Deno.test("help: every relay-listener and relay-sender page says how to authenticate", async () => {
  const pages = [
    ["relay-listener"],
    ["relay-sender"],
    ["relay-sender", "port-forward"],
    ["relay-sender", "socks5-proxy"],
    ["relay-sender", "connect"],
  ];
  const results = await Promise.all(pages.map((p) => runCli([...p, "--help"])));
  results.forEach((r, i) => {
    assert.equal(r.code, 0, r.stderr);
    const page = pages[i].join(" ");
    assert.match(r.text, /^Authentication \(credentials are never flags\):$/m, page);
    assert.match(r.text, /SAS {4}AZTUNNEL_KEY_NAME and AZTUNNEL_KEY/, page);
    assert.match(r.text, /Entra {2}otherwise @azure\/identity's DefaultAzureCredential/, page);
    assert.match(r.text, /--relay-ca-cert/, page);
    // The root overview is not repeated on every page.
    assert.doesNotMatch(r.text, /^Modes:/m, page);
  });
  const listener = results[0].text;
  assert.match(listener, /\*:port, \*\.suffix:port, \*\.suffix:\*/);
  assert.match(listener, /--connect-timeout <duration>[\s\S]*0 = 30s, as in Go/);
});

Deno.test("completion: the bash script loads and completes commands, flags and values", async () => {
  const script = await runCli(["completion", "bash"]);
  assert.equal(script.code, 0, script.stderr);
  const dir = await Deno.makeTempDir({ prefix: "aztunnel-completion-" });
  try {
    await Deno.writeTextFile(`${dir}/aztunnel.bash`, script.text);
    const probe = `
source "${dir}/aztunnel.bash"
t() { COMP_WORDS=("$@"); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _aztunnel; echo "\${COMPREPLY[*]}"; }
t aztunnel ""
t aztunnel relay-s
t aztunnel --log-level warn relay-sender c
t aztunnel relay-sender port-forward --relay wss://x --hy
t aztunnel --log-level ""
t aztunnel completion ""
t aztunnel arc connect --res
t aztunnel relay-listener --relay relay-sender ""
complete -p aztunnel
`;
    const out = await run("bash", ["-c", probe]);
    assert.equal(out.code, 0, out.stderr);
    const lines = out.text.trimEnd().split("\n");
    const [root, ...rest] = lines;
    for (
      const cmd of ["relay-listener", "relay-sender", "arc", "relay-server", "demo", "completion"]
    ) {
      assert.ok(root.split(" ").includes(cmd), `${cmd} in ${root}`);
    }
    assert.deepEqual(rest, [
      "relay-sender relay-server",
      "connect",
      "--hyco",
      "debug info warn error",
      "bash zsh fish",
      "--resource-id",
      // The value of --relay is not a command: nothing to complete after the positional.
      "",
      "complete -F _aztunnel aztunnel",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("completion: zsh and fish scripts, and an unknown shell is a usage error", async () => {
  const [zsh, fish, bad] = await Promise.all([
    runCli(["completion", "zsh"]),
    runCli(["completion", "fish"]),
    runCli(["completion", "tcsh"]),
  ]);
  assert.equal(zsh.code, 0, zsh.stderr);
  assert.match(zsh.text, /^#compdef aztunnel\n/);
  assert.match(zsh.text, /bashcompinit/);
  assert.match(zsh.text, /^complete -F _aztunnel aztunnel$/m);
  assert.equal(fish.code, 0, fish.stderr);
  assert.match(fish.text, /^complete -c aztunnel -f$/m);
  assert.match(
    fish.text,
    /^complete -c aztunnel -n 'not __fish_seen_subcommand_from [^']*' -a 'relay-listener' -d /m,
  );
  assert.match(
    fish.text,
    /^complete -c aztunnel -n '__fish_seen_subcommand_from relay-sender; and __fish_seen_subcommand_from port-forward' -l bind -s b -x -d /m,
  );
  assert.match(fish.text, /-l log-level -x -a 'debug info warn error'/);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /^aztunnel: error: .*'tcsh' is invalid.*bash, zsh, fish/m);
});

Deno.test("flags that cannot work are usage errors (exit 2) that say why", async () => {
  const cases: [string[], Record<string, string>, RegExp][] = [
    [
      ["relay-listener", ...RELAY, "--connect-timeout", "-1s"],
      SAS,
      /--connect-timeout "-1s": must not be negative/,
    ],
    [
      ["relay-listener", ...RELAY, "--drain-timeout", "-1s"],
      SAS,
      /--drain-timeout "-1s": must not be negative/,
    ],
    [
      ["relay-listener", "--relay", "ws://127.0.0.1:9", "--hyco", "my hyco"],
      SAS,
      /invalid hybrid connection name "my hyco": must not contain spaces/,
    ],
    [
      ["relay-sender", "connect", "--relay", "ws://127.0.0.1:9", "--hyco", "../x", "a:1"],
      SAS,
      /invalid hybrid connection name "\.\.\/x"/,
    ],
    [
      ["relay-sender", "port-forward", ...RELAY, "-b", "127.0.0.1:70000", "a:1"],
      SAS,
      /invalid --bind address "127\.0\.0\.1:70000": port 70000 is above 65535/,
    ],
    [
      ["relay-sender", "connect", ...RELAY, "--relay-insecure-tls", "a:1"],
      SAS,
      /^aztunnel: error: --relay-insecure-tls is not supported: .*--relay-ca-cert FILE/m,
    ],
    [
      ["relay-listener", ...RELAY],
      { ...SAS, AZTUNNEL_RELAY_INSECURE_TLS: "1" },
      /^aztunnel: error: AZTUNNEL_RELAY_INSECURE_TLS=1 is not supported/m,
    ],
    [
      ["relay-listener", ...RELAY, "--allow", "*example.com:443"],
      SAS,
      /invalid --allow entry "\*example\.com:443": "\*example\.com": a wildcard host is/,
    ],
  ];
  const results = await Promise.all(cases.map(([args, env]) => runCli(args, { env })));
  results.forEach((r, i) => {
    assert.equal(r.code, 2, `${cases[i][0].join(" ")}\n${r.stderr}`);
    assert.match(r.stderr, cases[i][2]);
    assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
  });
});
