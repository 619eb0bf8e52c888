/** `aztunnel doctor` for a hybrid connection: network, credential, Send, Listen, listener, target. */
import type { Logger } from "../observe/log.ts";
import { resourceUri } from "../relay/urls.ts";
import type { SenderRelayConfig } from "../sender/open_tunnel.ts";
import type { ProxyConfig } from "../ws/proxy.ts";
import { runChecks } from "./checks.ts";
import { credentialCheck } from "./credential.ts";
import { networkChecks, relayAddress } from "./network.ts";
import { relayChecks } from "./relay_checks.ts";

export interface RelayDoctorOptions {
  relay: SenderRelayConfig;
  /** Deadline of each check. */
  timeoutMs: number;
  skipListen?: boolean;
  /** `host:port` the listener should be able to reach. */
  target?: string;
  /** Receives each report line. */
  write(line: string): void;
  logger: Logger;
  signal?: AbortSignal;
  /** The proxy the dial would take; default from the environment (tests pin it). */
  proxy?: ProxyConfig | null;
}

/** Prints one line per check; true when every check that ran passed. */
export async function runRelayDoctor(opts: RelayDoctorOptions): Promise<boolean> {
  const { relay } = opts;
  const probes = relayChecks({
    relay,
    timeoutMs: opts.timeoutMs,
    skipListen: opts.skipListen,
    target: opts.target,
    logger: opts.logger,
  });
  try {
    return await runChecks([
      ...networkChecks({
        address: relayAddress(relay.endpoint),
        caCerts: relay.caCerts,
        proxy: opts.proxy,
      }),
      credentialCheck(relay.tokens, resourceUri(relay.endpoint, relay.entity)),
      ...probes.checks,
    ], { timeoutMs: opts.timeoutMs, write: opts.write, signal: opts.signal });
  } finally {
    probes.close();
  }
}
