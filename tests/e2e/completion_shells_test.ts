/**
 * The zsh and fish completion scripts loaded into the real shells (bash is driven in
 * cli_help_test.ts). zsh completes through ZLE in a pseudo-terminal (zpty), so the script goes
 * through compinit, bashcompinit and the `_comps` dispatch exactly as at a prompt; fish answers
 * `complete -C`. scripts/install_test_deps.sh installs both; without one its test is skipped.
 */
import assert from "node:assert/strict";
import { run, runCli } from "../helpers/proc.ts";

const works = (cmd: string, args: string[]) =>
  run(cmd, args).then((r) => r.code === 0, () => false);
const zshAvailable = await works("zsh", ["-f", "-c", "zmodload zsh/zpty"]);
const fishAvailable = await works("fish", ["--no-config", "-c", "true"]);

/** Writes `aztunnel completion <shell>` to a temporary file and hands its path to `fn`. */
async function withScript(shell: string, fn: (path: string) => Promise<void>): Promise<void> {
  const script = await runCli(["completion", shell]);
  assert.equal(script.code, 0, script.stderr);
  const dir = await Deno.makeTempDir({ prefix: "aztunnel-completion-" });
  try {
    const path = `${dir}/aztunnel.${shell}`;
    await Deno.writeTextFile(path, script.text);
    await fn(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Types each line into an interactive `zsh -f` on a zpty and presses a key bound to completion;
 * `compadd` is wrapped to report the matches it accepts. Prints `CASE:<line>` then `MATCH:<word>`s.
 * The markers are typed split (`"::E""ND::"`) so the terminal's echo of the typed line never
 * matches them: under load the echo can arrive after the read starts.
 */
const ZSH_DRIVER = String.raw`
zmodload zsh/zpty
script=$1; shift
zpty -b z zsh -f -i
zpty -w z "PS1='' RPROMPT=''; autoload -U compinit && compinit -u -D; source \${(q)script}"
zpty -w z 'compadd() { local -a m; builtin compadd -O m "$@"; (( $#m )) && print -rl -- "" "MATCH:"\${^m} >/dev/tty; builtin compadd "$@"; }'
zpty -w z 'whence -w _aztunnel; print -r -- "COMP:$_comps[aztunnel]"'
zpty -w z '_t() { _main_complete; print -r -- "::E""ND::" >/dev/tty; }; zle -C t-complete complete-word _t; bindkey "^T" t-complete; print -r -- "::REA""DY::"'
out=""
zpty -r z out '*::READY::*' || exit 3
print -rl -- \${(M)\${(f)out//$'\r'/}:#(_aztunnel: function|COMP:*)}
for line in "$@"; do
  zpty -w -n z $'\C-u'"$line"$'\C-t'
  out=""
  zpty -r z out '*::END::*' || exit 4
  print -r -- "CASE:$line"
  print -rl -- \${(M)\${(f)out//$'\r'/}:#MATCH:*}
done
zpty -d z
`.replaceAll("\\$", "$");

/** `CASE:` header → the words offered, in order. */
function parseCases(text: string): Map<string, string[]> {
  const cases = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of text.split("\n")) {
    if (line.startsWith("CASE:")) cases.set(line.slice(5), current = []);
    else if (line.startsWith("MATCH:")) current?.push(line.slice(6));
  }
  return cases;
}

Deno.test({
  name: "completion: the zsh script completes commands, flags and values in a real zsh",
  ignore: !zshAvailable,
  fn: () =>
    withScript("zsh", async (path) => {
      const lines = [
        "aztunnel ",
        "aztunnel relay-se",
        "aztunnel relay-sender ",
        "aztunnel --log-level warn relay-sender c",
        "aztunnel completion ",
        "aztunnel --log-level ",
        "aztunnel arc connect --res",
        "aztunnel relay-sender port-forward --relay wss://x --hy",
      ];
      const out = await run("zsh", ["-f", "-c", ZSH_DRIVER, "zsh", path, ...lines]);
      assert.equal(out.code, 0, out.stderr + out.text);
      assert.match(out.text, /^_aztunnel: function$/m, out.text);
      assert.match(out.text, /^COMP:_bash_complete -F _aztunnel/m, out.text);
      const got = parseCases(out.text);
      const root = got.get("aztunnel ")!;
      for (const cmd of ["relay-listener", "relay-sender", "arc", "relay-server", "completion"]) {
        assert.ok(root.includes(cmd), `${cmd} in ${root}`);
      }
      assert.deepEqual(Object.fromEntries([...got].slice(1)), {
        "aztunnel relay-se": ["relay-sender", "relay-server"],
        "aztunnel relay-sender ": [
          "port-forward",
          "socks5-proxy",
          "http-proxy",
          "connect",
          "agent",
        ],
        "aztunnel --log-level warn relay-sender c": ["connect"],
        "aztunnel completion ": ["bash", "zsh", "fish"],
        "aztunnel --log-level ": ["debug", "info", "warn", "error"],
        "aztunnel arc connect --res": ["--resource-id"],
        "aztunnel relay-sender port-forward --relay wss://x --hy": ["--hyco"],
      });
    }),
});

Deno.test({
  name: "completion: the fish script completes commands, flags and values in a real fish",
  ignore: !fishAvailable,
  fn: () =>
    withScript("fish", async (path) => {
      const lines = [
        "aztunnel relay-se",
        "aztunnel relay-sender ",
        "aztunnel completion ",
        "aztunnel --log-level ",
        "aztunnel arc connect --res",
        "aztunnel relay-sender connect --res",
      ];
      const probe = [
        `source ${path}`,
        ...lines.map((l) => `echo "CASE:${l}"; complete -C "${l}" | string replace -r '^' MATCH:`),
        "true", // `string replace` fails on the empty case
      ].join("\n");
      const out = await run("fish", ["--no-config", "-c", probe]);
      assert.equal(out.code, 0, out.stderr);
      const got = new Map(
        [...parseCases(out.text)].map(([k, v]) => [k, v.map((m) => m.split("\t")[0]).sort()]),
      );
      assert.deepEqual(Object.fromEntries(got), {
        "aztunnel relay-se": ["relay-sender", "relay-server"],
        "aztunnel relay-sender ": [
          "agent",
          "connect",
          "http-proxy",
          "port-forward",
          "socks5-proxy",
        ],
        "aztunnel completion ": ["bash", "fish", "zsh"],
        "aztunnel --log-level ": ["debug", "error", "info", "warn"],
        "aztunnel arc connect --res": ["--resource-id"],
        // `--resource-id` is arc's, not relay-sender connect's.
        "aztunnel relay-sender connect --res": [],
      });
      // Descriptions come along.
      assert.match(out.text, /^MATCH:relay-sender\topen tunnels through Azure Relay/m);
    }),
});
