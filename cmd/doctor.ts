/**
 * `aztunnel doctor`: checks the path to a hybrid connection (or, with --resource-id, to an Arc
 * machine) step by step, one line each, and exits 0 only when every check passed.
 */
import { type Command, Option } from "@commander-js/extra-typings";
import { runArcDoctor } from "../lib/doctor/arc.ts";
import { runRelayDoctor } from "../lib/doctor/relay.ts";
import { parseDuration } from "../lib/duration.ts";
import { AztunnelError, UsageError } from "../lib/errors.ts";
import { getLogger } from "../lib/observe/log.ts";
import { normalizeTarget } from "../lib/sender/target.ts";
import {
  arcPortOption,
  arcServiceOption,
  arcTarget,
  type ArcTargetFlags,
  armEndpointOption,
  resourceIdOption,
} from "./arc_flags.ts";
import { addRelayOptions, type OptionSources, type RelayFlags, resolveRelay } from "./common.ts";

export const DEFAULT_DOCTOR_TIMEOUT = "10s";

interface DoctorFlags extends RelayFlags, ArcTargetFlags {
  timeout: string;
  target?: string;
  skipListen?: boolean;
}

/** `--timeout`: a positive duration, else a usage error. */
export function doctorTimeout(text: string): number {
  const ms = parseDuration(text, "--timeout");
  if (!(ms > 0)) throw new UsageError(`invalid --timeout "${text}": must be more than 0`);
  return ms;
}

export function register(program: Command): void {
  addRelayOptions(
    program
      .command("doctor")
      .description(
        "check DNS, TCP, TLS, credentials, Send/Listen rights and the listener, one line each",
      ),
  )
    .addOption(
      new Option("--timeout <duration>", "deadline of each check")
        .env("AZTUNNEL_DOCTOR_TIMEOUT")
        .default(DEFAULT_DOCTOR_TIMEOUT),
    )
    .addOption(
      new Option("--target <host:port>", "also check that the listener may and can reach it")
        .env("AZTUNNEL_DOCTOR_TARGET"),
    )
    .addOption(
      new Option(
        "--skip-listen",
        "leave out the Listen check (it briefly adds a listener to the hybrid connection)",
      ).env("AZTUNNEL_DOCTOR_SKIP_LISTEN"),
    )
    .addOption(resourceIdOption("check an Arc machine instead of a hybrid connection"))
    .addOption(arcPortOption("with --resource-id: port on the machine (default 22, WAC 6516)"))
    .addOption(arcServiceOption("with --resource-id: SSH or WAC"))
    .addOption(armEndpointOption("with --resource-id: Azure Resource Manager endpoint"))
    .addHelpText(
      "after",
      `
Exit status: 0 when every check passed, 1 when one failed, 2 for a usage error. Credentials come
from the environment as for relay-sender (AZTUNNEL_KEY_NAME/AZTUNNEL_KEY, else Entra ID).`,
    )
    .action(async (flags, cmd) => {
      const ok = await runDoctor(flags as DoctorFlags, cmd);
      if (!ok) throw new AztunnelError("doctor_failed", "doctor: a check failed (see above)");
    });
}

async function runDoctor(flags: DoctorFlags, cmd: OptionSources): Promise<boolean> {
  const timeoutMs = doctorTimeout(flags.timeout);
  const write = (line: string) => console.log(line);
  if (flags.resourceId !== undefined) {
    if (cmd.getOptionValueSource("relay") === "cli" || cmd.getOptionValueSource("hyco") === "cli") {
      throw new UsageError("--resource-id checks an Arc machine: leave out --relay and --hyco");
    }
    return await runArcDoctor({
      ...arcTarget(flags),
      timeoutMs,
      write,
    });
  }
  const target = flags.target === undefined ? undefined : normalizeTarget(flags.target);
  const relay = await resolveRelay(flags, cmd);
  return await runRelayDoctor({
    relay,
    timeoutMs,
    skipListen: flags.skipListen === true,
    target,
    write,
    logger: getLogger(),
  });
}
