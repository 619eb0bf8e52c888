/**
 * The Arc cast for in-process and CLI tests: relay-server as the Arc relay (it accepts the Arc
 * accessKey), the fake ARM whose credentials that relay accepts, and fake Arc agents as listeners.
 */
import { parseArcRelayUrl } from "../../lib/arc/config.ts";
import type { ArcSessionOptions } from "../../lib/arc/session.ts";
import type { CredentialLike } from "../../lib/relay/entra.ts";
import { startRelayServer } from "../../lib/server/mod.ts";
import { randomKey } from "../../lib/server/policy.ts";
import { type FakeArcAgent, startFakeArcAgent } from "./fake_arc_agent.ts";
import { type FakeArm, type FakeArmOptions, startFakeArm } from "./fake_arm.ts";

export interface ArcStackOptions {
  resourceId: string;
  hybridConnectionName: string;
  /** The relay policy the agents and the ARM credentials use. */
  keyName: string;
  /** Default `azgnrelay-westeurope-l1`. */
  namespaceName?: string;
  /** Overrides for the fake ARM (they win over the relay settings above). */
  arm?: Partial<FakeArmOptions>;
  /** Serve wss:// with this certificate; the agents trust `ca`. */
  tls?: { cert: string; key: string; ca: string };
  /** Start one agent now (default); false leaves it to `startAgent()`. */
  startAgent?: boolean;
}

export interface ArcStack extends AsyncDisposable {
  arm: FakeArm;
  relayUrl: string;
  /** The relay policy's key. */
  key: string;
  startAgent(): Promise<FakeArcAgent>;
  /** Connect headers of every sender the agents accepted. */
  agentHeaders(): Array<Record<string, string>>;
  /** Session options for `port` on the machine, ARM tokens from `staticCredential`. */
  session(port: number, extra?: Partial<ArcSessionOptions>): ArcSessionOptions;
}

/** ARM tokens without any identity library, for a fake ARM that does not verify them. */
export const staticCredential: CredentialLike = {
  getToken: () => Promise.resolve({ token: "arm-token", expiresOnTimestamp: Date.now() + 3600e3 }),
};

/** Disposing closes the agents, then the relay, then the ARM. */
export async function startArcStack(o: ArcStackOptions): Promise<ArcStack> {
  const key = randomKey();
  const namespaceName = o.namespaceName ?? "azgnrelay-westeurope-l1";
  const relay = await startRelayServer({
    bind: "127.0.0.1:0",
    // The ARM answer names the Azure namespace; its tokens are signed for that host.
    namespaceHosts: [`${namespaceName}.servicebus.windows.net`],
    policies: [{ name: o.keyName, key, rights: ["Listen", "Send"] }],
    tls: o.tls && { cert: o.tls.cert, key: o.tls.key },
  });
  const arm = startFakeArm({
    resourceId: o.resourceId,
    relay: {
      namespaceName,
      namespaceNameSuffix: "servicebus.windows.net",
      hybridConnectionName: o.hybridConnectionName,
      keyName: o.keyName,
      key,
    },
    ...o.arm,
  });
  const agents: FakeArcAgent[] = [];
  const startAgent = async () => {
    const agent = startFakeArcAgent({
      relayUrl: relay.url,
      hybridConnectionName: o.hybridConnectionName,
      keyName: o.keyName,
      key,
      serviceConfigurationToken: arm.tokenFor,
      caCerts: o.tls && [o.tls.ca],
    });
    agents.push(agent);
    await agent.ready;
    return agent;
  };
  if (o.startAgent ?? true) await startAgent();
  return {
    arm,
    relayUrl: relay.url,
    key,
    startAgent,
    agentHeaders: () => agents.flatMap((a) => a.accepted),
    session: (port, extra = {}) => ({
      resourceId: o.resourceId,
      port,
      service: "SSH",
      armEndpoint: new URL(arm.url),
      relayBase: parseArcRelayUrl(relay.url),
      credential: staticCredential,
      armRetryDelaysMs: [],
      dialTiming: { backoffMs: [20], quietMs: 100_000, progressEveryMs: 100_000 },
      ...extra,
    }),
    async [Symbol.asyncDispose]() {
      for (const a of agents) await a.close();
      await relay.close();
      await arm.close();
    },
  };
}
