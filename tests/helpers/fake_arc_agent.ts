/**
 * A fake Azure Arc agent: a relay listener on the machine's hybrid connection that, like the real
 * agent, checks the Arc headers of each sender (`Service-Configuration-Token`,
 * `Microsoft-Guestgateway-Target: localhost:{port}`; the relay itself checked and stripped
 * `Servicebusauthorization`) and bridges raw bytes, no envelope, to `localhost:{port}`.
 */
import { getLogger } from "../../lib/observe/log.ts";
import { type AcceptMessage, runControlChannel } from "../../lib/relay/control_channel.ts";
import { parseRelayEndpoint } from "../../lib/relay/endpoint.ts";
import { acceptRendezvous, rejectRendezvous } from "../../lib/relay/rendezvous.ts";
import { SasTokenProvider } from "../../lib/relay/token.ts";
import { bridge } from "../../lib/tunnel/bridge.ts";

export interface FakeArcAgentOptions {
  /** The relay-server's `ws://127.0.0.1:PORT`. */
  relayUrl: string;
  hybridConnectionName: string;
  keyName: string;
  key: string;
  /** The token the agent expects for a target port (ARM binds it to the configured port). */
  serviceConfigurationToken: string | ((port: number) => string);
  /** Trusted CAs when the relay serves wss://. */
  caCerts?: string[];
}

export interface FakeArcAgent {
  /** Resolves once the control channel is registered at the relay. */
  readonly ready: Promise<void>;
  /** Accepted senders' connect headers (lower-case names). */
  readonly accepted: Array<Record<string, string>>;
  /** Why senders were refused. */
  readonly refused: string[];
  close(): Promise<void>;
}

function header(headers: Record<string, string>, name: string): string | undefined {
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name.toLowerCase());
  return key === undefined ? undefined : headers[key];
}

export function startFakeArcAgent(opts: FakeArcAgentOptions): FakeArcAgent {
  const stop = new AbortController();
  const tasks = new Set<Promise<void>>();
  const accepted: Array<Record<string, string>> = [];
  const refused: string[] = [];
  const { promise: ready, resolve: markReady } = Promise.withResolvers<void>();
  const logger = getLogger({ component: "fake-arc-agent" });

  const serve = async (accept: AcceptMessage, sessionSignal: AbortSignal) => {
    const h = accept.connectHeaders;
    const target = /^localhost:(\d+)$/.exec(header(h, "Microsoft-Guestgateway-Target") ?? "");
    const expected = typeof opts.serviceConfigurationToken === "string"
      ? opts.serviceConfigurationToken
      : opts.serviceConfigurationToken(Number(target?.[1]));
    let why: string | undefined;
    if (!target) why = "bad Microsoft-Guestgateway-Target";
    else if (header(h, "Service-Configuration-Token") !== expected) {
      why = "bad Service-Configuration-Token";
    }
    if (why) {
      refused.push(why);
      await rejectRendezvous(accept.address, 403, why, {
        signal: sessionSignal,
        caCerts: opts.caCerts,
      }).catch(() => {});
      return;
    }
    const port = Number(target?.[1]);
    let local: Deno.TcpConn;
    try {
      local = await Deno.connect({ hostname: "127.0.0.1", port });
    } catch (err) {
      refused.push(`dial localhost:${port}: ${(err as Error).message}`);
      await rejectRendezvous(accept.address, 502, "target unreachable", {
        signal: sessionSignal,
        caCerts: opts.caCerts,
      }).catch(() => {});
      return;
    }
    let ws;
    try {
      ws = await acceptRendezvous(accept.address, { signal: sessionSignal, caCerts: opts.caCerts });
    } catch {
      local.close();
      return;
    }
    accepted.push({ ...h });
    await bridge(local, ws, { halfClose: false, signal: sessionSignal });
  };

  const control = runControlChannel({
    endpoint: parseRelayEndpoint(opts.relayUrl),
    entity: opts.hybridConnectionName,
    tokens: new SasTokenProvider(opts.keyName, opts.key),
    caCerts: opts.caCerts,
    logger,
    signal: stop.signal,
    reconnectBaseMs: 50,
    reconnectMaxMs: 200,
    onConnectedChange: (up) => {
      if (up) markReady();
    },
    onAccept: (accept, ctx) => {
      const task = serve(accept, ctx.sessionSignal);
      tasks.add(task);
      task.finally(() => tasks.delete(task));
    },
  });

  return {
    ready,
    accepted,
    refused,
    async close() {
      stop.abort();
      await control;
      await Promise.allSettled([...tasks]);
    },
  };
}
