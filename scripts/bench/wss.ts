/** Set-up over a wss:// relay-server vs a ws:// one: TLS must not add delayed-ACK stalls. */
import { makeTestCerts, opensslAvailable } from "../../tests/helpers/certs.ts";
import { startTunnel } from "./cast.ts";
import { envNumber, progress } from "./env.ts";
import { setupLatency } from "./latency.ts";
import type { SetupStats } from "./stats.ts";
import { f2, ratio, table, verdict } from "./table.ts";

const WSS_ITERATIONS = envNumber("BENCH_WSS_ITERATIONS", 100);
const TARGET_WSS_VS_WS = 1.5;

export interface WssSetup {
  ws: SetupStats;
  wss: SetupStats;
}

/** Serial connect + 1 KiB echo through the same cast over ws:// and over wss://. */
export async function wssSetup(echoAddr: string): Promise<WssSetup | undefined> {
  if (!opensslAvailable) {
    progress("set-up ws vs wss: skipped (no openssl)");
    return undefined;
  }
  await using certs = await makeTestCerts();
  const tls = {
    certFile: `${certs.dir}/srv.crt`,
    keyFile: `${certs.dir}/srv.key`,
    caFile: certs.caFile,
  };
  let ws: SetupStats;
  {
    await using t = await startTunnel(echoAddr, "bench-ws");
    progress("set-up: port-forward over ws://");
    ws = await setupLatency(t.pf.port, WSS_ITERATIONS);
  }
  {
    await using t = await startTunnel(echoAddr, "bench-wss", tls);
    progress(`set-up: port-forward over wss:// (${t.relay.url})`);
    return { ws, wss: await setupLatency(t.pf.port, WSS_ITERATIONS) };
  }
}

export function wssReport(r: WssSetup | undefined): string {
  if (!r) return "#### Set-up over wss:// vs ws://\n\nskipped: no openssl for a test certificate";
  const row = (name: string, s: SetupStats) => [
    name,
    f2(s.p50),
    f2(s.p95),
    f2(s.mean),
    f2(s.max),
    ratio(s.p50, r.ws.p50),
  ];
  return [
    `#### Set-up over wss:// vs ws:// (serial connect + 1 KiB echo, ${WSS_ITERATIONS} iterations)`,
    "",
    table(["relay-server", "p50 ms", "p95 ms", "mean ms", "max ms", "p50 vs ws://"], [
      row("ws://", r.ws),
      row("wss://", r.wss),
    ]),
    "",
    table(["target", "measured", "verdict"], [[
      `wss:// set-up p50 within ${TARGET_WSS_VS_WS}× ws://`,
      ratio(r.wss.p50, r.ws.p50),
      verdict(r.wss.p50 / r.ws.p50 <= TARGET_WSS_VS_WS),
    ]]),
  ].join("\n");
}
