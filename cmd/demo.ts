/**
 * `aztunnel demo` (lib/demo): the whole tunnel in one process on 127.0.0.1 with a self-check.
 * `--once` exits after the self-check (0 ok, 1 failed). With `--metrics-addr` one ops server covers
 * it all: the relay's and the tunnels' metrics in one registry, ready once every component is up.
 */
import type { Command } from "@commander-js/extra-typings";
import { runDemo } from "../lib/demo/run.ts";
import { registerRelayServerMetrics } from "../lib/observe/metrics.ts";
import type { Readiness } from "../lib/observe/ops_server.ts";
import { relayServerCounts, runWithOps } from "./ops.ts";

export function register(program: Command): void {
  program
    .command("demo")
    .description(
      "run a relay, listener, HTTP target, port-forward and SOCKS5 proxy on 127.0.0.1 and prove a round trip",
    )
    .option("--once", "exit after the self-check (0 ok, 1 failed)")
    .option("--hyco <name>", "hybrid connection name", "demo")
    .action(async (flags, cmd) => {
      // Per-connection INFO lines would bury the demo's own output; --log-level brings them back.
      // Only the components are quietened: the ops server's INFO line still tells where it is.
      const quiet = cmd.parent?.getOptionValueSource("logLevel") === "default";
      let ready = false;
      const readiness = (): Readiness =>
        ready ? { ready: true } : { ready: false, reason: "demo components not up" };
      await runWithOps(cmd, { readiness }, ({ metrics, ...ops }) =>
        runDemo({
          once: flags.once === true,
          hyco: flags.hyco,
          quiet,
          signal: ops.signal,
          observer: ops.observer,
          opsAddr: ops.opsAddr,
          tokens: ops.tokens,
          onRelayServer: (server) => {
            if (metrics) {
              registerRelayServerMetrics(metrics.registry, () => relayServerCounts(server.stats()));
            }
          },
          onControlConnected: (up) => metrics?.setControlConnected(up),
          onReady: (up) => ready = up,
        }));
    });
}
