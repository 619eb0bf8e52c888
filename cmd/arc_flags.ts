/**
 * The flags naming an Arc machine and its service (`--resource-id`, `--port`, `--service`,
 * `--arm-endpoint`), shared by `arc connect`/`arc port-forward` and `doctor --resource-id`; each
 * command words the help its own way.
 */
import { Option } from "@commander-js/extra-typings";
import {
  DEFAULT_ARM_ENDPOINT,
  parseArcService,
  parseArmEndpoint,
  parseResourceId,
  resolveArcPort,
} from "../lib/arc/config.ts";

export const resourceIdOption = (help: string) =>
  new Option("--resource-id <id>", help).env("AZTUNNEL_ARC_RESOURCE_ID");
/** No commander default: an absent --port picks the service's port (resolveArcPort). */
export const arcPortOption = (help: string) => new Option("--port <port>", help);
export const arcServiceOption = (help: string) =>
  new Option("--service <name>", help).default("SSH");
export const armEndpointOption = (help: string) =>
  new Option("--arm-endpoint <url>", help)
    .env("AZTUNNEL_ARM_ENDPOINT")
    .default(DEFAULT_ARM_ENDPOINT);

export interface ArcTargetFlags {
  resourceId?: string;
  /** Undefined when not given: the default depends on the service. */
  port?: string;
  service: string;
  armEndpoint?: string;
}

/** The four flags, parsed; throws UsageError. */
export function arcTarget(flags: ArcTargetFlags) {
  const service = parseArcService(flags.service);
  return {
    resourceId: parseResourceId(flags.resourceId),
    port: resolveArcPort(flags.port, service),
    service,
    armEndpoint: parseArmEndpoint(flags.armEndpoint),
  };
}
