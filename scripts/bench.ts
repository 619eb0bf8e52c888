/**
 * `deno task bench [wss|delay]`: tunnel numbers on loopback, every piece a separate process
 * (relay-server, relay-listener, relay-sender), measured against baselines taken in the same run:
 *
 * - single-stream throughput (BENCH_BYTES, default 512 MiB) vs a direct connection and `ssh -L`;
 * - connection set-up (serial connect + 1 KiB echo, BENCH_SETUP_ITERATIONS, default 200) p50/p95;
 * - listener RSS with BENCH_IDLE_TUNNELS (default 1000) idle tunnels;
 * - set-up over a wss:// relay-server vs a ws:// one (BENCH_WSS_ITERATIONS, default 100): TLS must
 *   not add delayed-ACK stalls. `deno task bench wss` runs only this one;
 * - the delay model (BENCH_DELAY_MS, default 25 ms each way on both relay paths): serial, burst and
 *   `relay-sender connect` latencies against the 4·D floor, before and after the warm-leg pool.
 *   `deno task bench delay` runs only this one.
 *
 * Prints markdown tables (for the README), then those of scripts/bench_ws.ts when it exists. Not a
 * test: numbers that miss a target are reported, not failed.
 */
import { delayReport, measureDelay } from "./bench/delay.ts";
import { loopbackReport, measureLoopback } from "./bench/loopback.ts";
import { startEchoServer } from "../tests/helpers/servers.ts";
import { wssReport, wssSetup } from "./bench/wss.ts";
import { runWsBench } from "./bench/ws_layer.ts";

async function main(args: string[]) {
  if (args.includes("delay")) return console.log(delayReport(await measureDelay()));
  await using echo = startEchoServer();
  if (args.includes("wss")) return console.log(wssReport(await wssSetup(echo.addr)));
  const loopback = await measureLoopback(echo);
  const wss = await wssSetup(echo.addr);
  const delayed = await measureDelay();
  console.log([await loopbackReport(loopback), wssReport(wss), delayReport(delayed)].join("\n\n"));
  await runWsBench();
}

if (import.meta.main) await main(Deno.args);
