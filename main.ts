/**
 * The entry point. `relay-sender connect` through a running agent (an ssh ProxyCommand: one process
 * per connection) is served from a small import graph; everything else loads the full CLI.
 */
import { reportFailure } from "./cmd/failure.ts";
import { shutdownSignal } from "./cmd/shutdown.ts";
import { fastConnect } from "./lib/agent/fast_connect.ts";

async function main(args: string[]): Promise<number> {
  try {
    if (await fastConnect(args, { stop: () => shutdownSignal() })) return 0;
  } catch (err) {
    return reportFailure(err);
  }
  const { runCli } = await import("./cmd/root.ts");
  return await runCli(args);
}

Deno.exit(await main(Deno.args));
