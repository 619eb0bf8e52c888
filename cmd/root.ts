/** Builds the CLI from the modules in cmd/ and maps outcomes to exit codes (0 ok, 1 failure, 2 usage). */
import { Command, CommanderError, InvalidArgumentError, Option } from "@commander-js/extra-typings";
import { configureLogging, LOG_FORMATS, LOG_LEVELS } from "../lib/observe/log.ts";
import type { LogFormat, LogLevel } from "../lib/observe/log.ts";
import { VERSION } from "../lib/version.ts";
import { register as registerVersion } from "./version.ts";
import { register as registerRelayListener } from "./relay_listener.ts";
import { register as registerRelaySender } from "./relay_sender.ts";
import { register as registerArc } from "./arc.ts";
import { register as registerDemo } from "./demo.ts";
import { register as registerRelayServer } from "./relay_server.ts";
import { register as registerUp } from "./up.ts";
import { register as registerDoctor } from "./doctor.ts";
import { register as registerCompletion } from "./completion.ts";
import { OVERVIEW_HELP, RELAY_AUTH_HELP } from "./help.ts";
import { metricsAddrOption, metricsMaxTargetsOption } from "./ops.ts";
import { reportFailure } from "./failure.ts";

export function buildProgram(): Command {
  const program = new Command("aztunnel")
    .description(
      "Tunnel TCP connections through Azure Relay Hybrid Connections over WebSockets.",
    )
    .version(VERSION, "--version", "print the version and exit")
    .addOption(
      new Option("--log-level <level>", "log level").choices(LOG_LEVELS)
        .argParser(anyCase(LOG_LEVELS)).default("info" as const),
    )
    .addOption(
      new Option("--log-format <format>", "log format").choices(LOG_FORMATS)
        .argParser(anyCase(LOG_FORMATS)).default("logfmt" as const),
    )
    .addOption(metricsAddrOption())
    .addOption(metricsMaxTargetsOption())
    .enablePositionalOptions(false)
    // Global flags are accepted after the subcommand too, so every help page lists them.
    .configureHelp({ showGlobalOptions: true })
    .showHelpAfterError(false)
    .addHelpText("after", OVERVIEW_HELP)
    .exitOverride()
    .configureOutput({
      outputError: (str, write) => write(`aztunnel: ${str}`),
    });
  program.hook("preAction", async (_thisCommand, action) => {
    const g = action.optsWithGlobals() as { logLevel?: LogLevel; logFormat?: LogFormat };
    await configureLogging({ level: g.logLevel ?? "info", format: g.logFormat ?? "logfmt" });
  });
  registerVersion(program);
  registerRelayListener(program);
  registerRelaySender(program);
  registerArc(program);
  registerRelayServer(program);
  registerUp(program);
  registerDemo(program);
  registerDoctor(program);
  registerCompletion(program);
  addRelayAuthHelp(program);
  for (const cmd of program.commands) applyErrorHandling(cmd);
  return program;
}

/** Every relay-listener and relay-sender page says how to authenticate (their flags do not). */
function addRelayAuthHelp(program: Command): void {
  for (const cmd of program.commands) {
    if (cmd.name() === "relay-listener" || cmd.name() === "relay-sender") {
      cmd.addHelpText("after", RELAY_AUTH_HELP);
      for (const sub of cmd.commands) sub.addHelpText("after", RELAY_AUTH_HELP);
    }
  }
}

/**
 * A `.choices()` check that ignores case, as the Go tool does for `--log-level INFO`. It replaces the
 * parser `.choices()` installs; the choices stay on the option for the help text.
 */
function anyCase<T extends string>(choices: readonly T[]): (value: string) => T {
  return (value) => {
    const hit = choices.find((c) => c === value.trim().toLowerCase());
    if (hit === undefined) {
      throw new InvalidArgumentError(`Allowed choices are ${choices.join(", ")}.`);
    }
    return hit;
  };
}

function applyErrorHandling(
  cmd: Command<unknown[], Record<string, unknown>, Record<string, unknown>>,
) {
  cmd.exitOverride().configureOutput({
    outputError: (str, write) => write(`aztunnel: ${str}`),
  });
  for (const sub of cmd.commands) applyErrorHandling(sub);
}

/** Runs the CLI and returns the process exit code; never throws. */
export async function runCli(args: string[]): Promise<number> {
  const program = buildProgram();
  if (args.length === 0) {
    program.outputHelp({ error: true });
    return 2;
  }
  try {
    await program.parseAsync(args, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version") return 0;
      // `aztunnel help [command]` asked for help (exit code 0); a parent command without its
      // subcommand gets help as an error. Either way commander printed it.
      if (err.code === "commander.help") return err.exitCode === 0 ? 0 : 2;
      // Any other: a usage error; commander printed the message.
      return 2;
    }
    return reportFailure(err);
  }
}
