/** `arc connect` and `arc port-forward`: reach an Azure Arc machine through its Arc-managed relay. */
import type { Command } from "@commander-js/extra-typings";
import { arcKeepAlive, parseArcRelayUrl } from "../lib/arc/config.ts";
import { runArcConnect } from "../lib/arc/connect.ts";
import { runArcPortForward } from "../lib/arc/port_forward.ts";
import type { ArcSessionOptions } from "../lib/arc/session.ts";
import { stdioStream } from "../lib/sender/stdio.ts";
import {
  bindOption,
  gatewayOption,
  halfCloseLingerFlag,
  halfCloseLingerOption,
  keepaliveOption,
  readCaCerts,
  relayCaCertOption,
  resolveBind,
} from "./common.ts";
import {
  arcPortOption,
  arcServiceOption,
  arcTarget,
  type ArcTargetFlags,
  armEndpointOption,
  resourceIdOption,
} from "./arc_flags.ts";
import { runSenderWithOps } from "./ops.ts";

interface ArcFlags extends ArcTargetFlags {
  relayCaCert?: string;
  halfCloseLinger?: string;
}

/** Flags (and the AZTUNNEL_ARC_RELAY_URL override) to session options; throws UsageError. */
async function sessionOptions(flags: ArcFlags): Promise<ArcSessionOptions> {
  const relayUrl = Deno.env.get("AZTUNNEL_ARC_RELAY_URL");
  return {
    ...arcTarget(flags),
    relayBase: relayUrl ? parseArcRelayUrl(relayUrl) : undefined,
    caCerts: await readCaCerts(flags.relayCaCert),
    halfCloseLingerMs: halfCloseLingerFlag(flags.halfCloseLinger),
  };
}

export function register(program: Command): void {
  const arc = program
    .command("arc")
    .description("connect to an Azure Arc-enabled machine through its Arc-managed relay")
    .addOption(resourceIdOption("Arc machine resource ID"))
    .addOption(arcPortOption("port on the machine (default: 22, or 6516 with --service WAC)"))
    .addOption(arcServiceOption("Arc service: SSH or WAC"))
    .addOption(relayCaCertOption())
    .addOption(halfCloseLingerOption())
    .addOption(armEndpointOption("Azure Resource Manager endpoint (sovereign clouds)"))
    .configureHelp({ showGlobalOptions: true })
    .addHelpText(
      "after",
      `
Authentication: Azure sign-in through DefaultAzureCredential (environment service principal,
workload identity, managed identity, Azure CLI, ...) for the ARM scope <arm-endpoint>/.default.

Environment:
  AZTUNNEL_ARC_RESOURCE_ID  default for --resource-id
  AZTUNNEL_ARM_ENDPOINT     default for --arm-endpoint
  AZTUNNEL_ARC_RELAY_URL    test and diagnostics override: dial this base URL (e.g.
                            ws://127.0.0.1:8080) instead of the relay named by ARM

Example ssh config:
  Host /subscriptions/*
    ProxyCommand aztunnel arc connect --resource-id %n --port %p`,
    );

  arc
    .command("connect")
    .description("bridge stdin/stdout to the machine's port (ssh ProxyCommand)")
    .action(async (_opts, cmd) => {
      const opts = await sessionOptions(cmd.optsWithGlobals() as ArcFlags);
      await runSenderWithOps(cmd, (ops, ready) => {
        // stdin/stdout are the local side: there from the start.
        ready.bound();
        return runArcConnect({
          ...opts,
          local: stdioStream(),
          signal: ops.signal,
          observer: ops.observer,
        });
      });
    });

  arc
    .command("port-forward")
    .description("listen locally and forward each connection to the machine's port")
    .addOption(bindOption("127.0.0.1:0"))
    .addOption(gatewayOption())
    .addOption(keepaliveOption())
    .action(async (local, cmd) => {
      const opts = await sessionOptions(cmd.optsWithGlobals() as ArcFlags);
      const bind = resolveBind(local.bind, local.gateway);
      const keepAlive = arcKeepAlive(local.tcpKeepalive);
      await runSenderWithOps(cmd, (ops, ready) =>
        runArcPortForward({
          ...opts,
          bind,
          keepAlive,
          signal: ops.signal,
          observer: ops.observer,
          onListening: () => ready.bound(),
        }));
    });
}
