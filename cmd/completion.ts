/**
 * `aztunnel completion bash|zsh|fish`: a completion script generated from the command tree itself
 * (commands, subcommands, flags, flag choices), so it never goes stale. zsh reuses the bash script
 * through bashcompinit.
 */
import { Argument, type Command, type Option } from "@commander-js/extra-typings";
import { writeAll } from "../lib/net/write_all.ts";

export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = typeof SHELLS[number];

/** One flag as completion sees it. */
export interface FlagSpec {
  /** `--bind`, `-b`: every spelling. */
  readonly names: readonly string[];
  readonly takesValue: boolean;
  /** Values to offer, when the flag has a fixed set. */
  readonly choices?: readonly string[];
  /** The value is a path (`<file>`, `<dir>`): complete file names. */
  readonly path: boolean;
  readonly description: string;
}

/** One command: its path from the root (`[]` for the root) and what may follow it. */
export interface CommandSpec {
  readonly path: readonly string[];
  readonly description: string;
  readonly subcommands: readonly string[];
  /** The values its first argument takes, when it has a fixed set (`completion <shell>`). */
  readonly argChoices: readonly string[];
  /** Its own visible flags plus the global ones, which are accepted anywhere. */
  readonly flags: readonly FlagSpec[];
}

/** Every visible command of `root`, parents before children. */
export function commandSpecs(root: Command): CommandSpec[] {
  const out: CommandSpec[] = [];
  const walk = (cmd: Command, path: string[], inherited: FlagSpec[]) => {
    const help = cmd.createHelp();
    const own = help.visibleOptions(cmd).map(flagSpec);
    const flags = [...own, ...inherited.filter((g) => !own.some((f) => sameFlag(f, g)))];
    const children = help.visibleCommands(cmd).filter((c) => c.name() !== "help");
    out.push({
      path,
      description: cmd.description(),
      subcommands: children.map((c) => c.name()),
      argChoices: cmd.registeredArguments[0]?.argChoices ?? [],
      flags,
    });
    // Only the root's options are global; a parent's own (arc's) are accepted after its children.
    for (const child of children) walk(child as Command, [...path, child.name()], flags);
  };
  walk(root, [], []);
  return out;
}

function flagSpec(opt: Option): FlagSpec {
  const names = [opt.long, opt.short].filter((n): n is string => n !== undefined);
  return {
    names,
    takesValue: opt.required || opt.optional,
    choices: opt.argChoices,
    path: /<(?:file|dir)>/.test(opt.flags),
    description: opt.description,
  };
}

function sameFlag(a: FlagSpec, b: FlagSpec): boolean {
  return a.names[0] === b.names[0];
}

/** The script for `shell`. */
export function completionScript(shell: Shell, specs: readonly CommandSpec[]): string {
  if (shell === "fish") return fishScript(specs);
  const bash = bashScript(specs);
  if (shell === "bash") return bash;
  return `#compdef aztunnel
# aztunnel zsh completion. Add to ~/.zshrc (after compinit):  source <(aztunnel completion zsh)
autoload -U +X bashcompinit && bashcompinit
${bash}`;
}

const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

function bashScript(specs: readonly CommandSpec[]): string {
  const allFlags = specs.flatMap((s) => s.flags);
  const valued = unique(allFlags.filter((f) => f.takesValue).flatMap((f) => f.names));
  const paths = unique(allFlags.filter((f) => f.path).flatMap((f) => f.names));
  const choiceCases = uniqueBy(allFlags.filter((f) => f.choices), (f) => f.names.join("|"))
    .map((f) => `    ${f.names.join("|")}) words=${quote(f.choices!.join(" "))} ;;`);
  const pathCases = specs.map((s) => s.path.join(" "));
  const wordCases = specs.map((s) =>
    `    ${quote(s.path.join(" "))}) subs=${
      quote([...s.subcommands, ...s.argChoices].join(" "))
    }; flags=${quote(s.flags.flatMap((f) => f.names).join(" "))} ;;`
  );
  const caseLine = (names: readonly string[], body: string) =>
    names.length > 0 ? [`    ${names.join("|")}) ${body} ;;`] : [];
  return `# aztunnel bash completion. Load it with:  source <(aztunnel completion bash)
# or save it as ~/.local/share/bash-completion/completions/aztunnel
_aztunnel() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="" path="" w i words="" subs="" flags=""
  [ "$COMP_CWORD" -gt 0 ] && prev="\${COMP_WORDS[COMP_CWORD-1]}"
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    case "$w" in
    --*=*) continue ;;
${caseLine(valued, "i=$((i + 1)); continue").join("\n")}
    -*) continue ;;
    esac
    case "\${path:+$path }$w" in
    ${pathCases.filter((p) => p !== "").map(quote).join("|")}) path="\${path:+$path }$w" ;;
    *) break ;;
    esac
  done
  case "$prev" in
${
    [
      ...choiceCases,
      ...caseLine(
        paths,
        `compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")); return 0`,
      ),
      ...caseLine(valued, "COMPREPLY=(); return 0"),
    ].join("\n")
  }
  esac
  if [ -n "$words" ]; then
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
    return 0
  fi
  case "$path" in
${wordCases.join("\n")}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
  fi
  return 0
}
complete -F _aztunnel aztunnel
`;
}

function fishScript(specs: readonly CommandSpec[]): string {
  const lines = [
    "# aztunnel fish completion. Load it with:  aztunnel completion fish | source",
    "# or save it as ~/.config/fish/completions/aztunnel.fish",
    "complete -c aztunnel -f",
  ];
  const children = new Set(specs.flatMap((s) => s.subcommands));
  for (const spec of specs) {
    const at = fishCondition(spec.path, spec.subcommands, children);
    if (spec.argChoices.length > 0) {
      lines.push(`complete -c aztunnel -n ${quote(at)} -a ${quote(spec.argChoices.join(" "))}`);
    }
    for (const sub of spec.subcommands) {
      const child = specs.find((s) => s.path.join(" ") === [...spec.path, sub].join(" "));
      lines.push(
        `complete -c aztunnel -n ${quote(at)} -a ${quote(sub)} -d ${
          quote(firstSentence(child?.description ?? ""))
        }`,
      );
    }
    for (const f of spec.flags) {
      const parts = [`complete -c aztunnel -n ${quote(at)}`];
      for (const n of f.names) {
        parts.push(n.startsWith("--") ? `-l ${n.slice(2)}` : `-s ${n.slice(1)}`);
      }
      if (f.choices) parts.push(`-x -a ${quote(f.choices.join(" "))}`);
      else if (f.path) parts.push("-r -F");
      else if (f.takesValue) parts.push("-x");
      parts.push(`-d ${quote(firstSentence(f.description))}`);
      lines.push(parts.join(" "));
    }
  }
  return lines.join("\n") + "\n";
}

/** Fish: the words typed so far name exactly `path` (no deeper subcommand yet). */
function fishCondition(
  path: readonly string[],
  subs: readonly string[],
  allChildren: Set<string>,
): string {
  if (path.length === 0) return `not __fish_seen_subcommand_from ${[...allChildren].join(" ")}`;
  const seen = path.map((p) => `__fish_seen_subcommand_from ${p}`);
  if (subs.length > 0) seen.push(`not __fish_seen_subcommand_from ${subs.join(" ")}`);
  return seen.join("; and ");
}

function firstSentence(text: string): string {
  return text.split(/[.;(]/, 1)[0].trim();
}

function unique<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}

function uniqueBy<T>(xs: readonly T[], key: (x: T) => string): T[] {
  const seen = new Map<string, T>();
  for (const x of xs) if (!seen.has(key(x))) seen.set(key(x), x);
  return [...seen.values()];
}

export function register(program: Command): void {
  program
    .command("completion")
    .description("print a shell completion script: bash, zsh or fish")
    .addArgument(new Argument("<shell>", "bash, zsh or fish").choices(SHELLS))
    .addHelpText(
      "after",
      `
Load it:
  bash  source <(aztunnel completion bash)      (or save it in
        ~/.local/share/bash-completion/completions/aztunnel)
  zsh   source <(aztunnel completion zsh)       (in ~/.zshrc, after compinit)
  fish  aztunnel completion fish | source       (or save it in
        ~/.config/fish/completions/aztunnel.fish)`,
    )
    .action(async (shell) => {
      const script = completionScript(shell, commandSpecs(program));
      await writeAll(Deno.stdout, new TextEncoder().encode(script));
    });
}
