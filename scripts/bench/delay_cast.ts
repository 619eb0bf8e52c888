/**
 * The delay model's cast: relay-server on wss:// behind two delay proxies, one per path, so the
 * sender↔relay and listener↔relay legs each pay D per one-way trip, handshakes included. The
 * relay's `--public-url` names the listener's proxy, so rendezvous dials (accepts) cross it too;
 * the echo target and the clients stay local.
 */
import { makeTestCerts } from "../../tests/helpers/certs.ts";
import { type DelayProxy, startDelayProxy } from "../../tests/helpers/delay_proxy.ts";
import {
  type BoundProc,
  type Proc,
  type RelayServer,
  spawnCli,
  startListener,
  startPortForward,
  startRelayServer,
} from "../../tests/helpers/proc.ts";
import { startEchoServer } from "../../tests/helpers/servers.ts";
import { type HostPort, parseHostPort } from "../../lib/net/host_port.ts";

/** `BENCH_DELAY_LOG_LEVEL=debug E2E_VERBOSE=1` profiles a run: every process's log lines on stderr. */
const QUIET = ["--log-level", Deno.env.get("BENCH_DELAY_LOG_LEVEL") || "info"];
const HYCO = "bench-delay";

export interface DelayCast extends AsyncDisposable {
  readonly delayMs: number;
  /** `host:port` of the local echo target the listener dials. */
  readonly target: string;
  /** The relay as the sender reaches it: through the sender's proxy. */
  readonly senderRelay: RelayServer;
  readonly hyco: string;
  /** `--relay-ca-cert` for the test CA, which every client needs. */
  readonly caArgs: string[];
  /** `relay-sender port-forward` to the echo target with `args` appended. */
  startPortForward(args: string[]): Promise<BoundProc>;
  /** `relay-sender agent` with `env` (its socket directory), ready once it says so. */
  startAgent(env: Record<string, string>): Promise<Proc>;
}

/** relay-server as seen through `proxy`. */
const via = (relay: RelayServer, proxy: DelayProxy): RelayServer => ({
  ...relay,
  url: `wss://127.0.0.1:${proxy.port}`,
});

export async function startDelayCast(delayMs: number): Promise<DelayCast> {
  await using stack = new AsyncDisposableStack();
  const certs = stack.use(await makeTestCerts());
  const echo = stack.use(startEchoServer());
  let relayAddr: HostPort | null = null;
  const upstream = () => {
    if (!relayAddr) throw new Error("relay-server is not up yet");
    return relayAddr;
  };
  const senderProxy = stack.use(startDelayProxy({ delayMs, upstream }));
  const listenerProxy = stack.use(startDelayProxy({ delayMs, upstream }));
  const relay = stack.use(
    await startRelayServer({
      globalArgs: QUIET,
      args: [
        ...["--tls-cert", `${certs.dir}/srv.crt`, "--tls-key", `${certs.dir}/srv.key`],
        ...["--public-url", `wss://127.0.0.1:${listenerProxy.port}`],
      ],
    }),
  );
  relayAddr = parseHostPort(relay.addr);
  const ca = ["--relay-ca-cert", certs.caFile];
  stack.use(
    await startListener(via(relay, listenerProxy), { hyco: HYCO, globalArgs: QUIET, args: ca }),
  );
  const senderRelay = via(relay, senderProxy);
  const owned = stack.move();
  return {
    delayMs,
    target: echo.addr,
    senderRelay,
    hyco: HYCO,
    caArgs: ca,
    startPortForward: (args) =>
      startPortForward(senderRelay, echo.addr, {
        hyco: HYCO,
        globalArgs: QUIET,
        args: [...ca, ...args],
      }),
    async startAgent(env) {
      const proc = spawnCli([
        ...QUIET,
        "relay-sender",
        "agent",
        ...["--relay", senderRelay.url, "--hyco", HYCO, ...ca],
      ], { env: { ...relay.env, ...env }, name: "relay-sender agent" });
      try {
        await proc.waitForLine(/agent.*(listening|ready)|(listening|ready).*agent/i);
        return proc;
      } catch (err) {
        await proc.kill("SIGKILL");
        throw err;
      }
    },
    [Symbol.asyncDispose]: () => owned.disposeAsync(),
  };
}
