/** `relay-sender port-forward`: every local TCP connection gets its own tunnel to one target. */
import type { ConnectionScope } from "./serve.ts";
import {
  bridgeClient,
  openClientTunnel,
  runTunnelService,
  type TunnelServiceOptions,
} from "./tunnel_service.ts";

export interface PortForwardOptions extends TunnelServiceOptions {
  target: string;
}

/** Listens and forwards until `signal` aborts, then drains. Throws when the bind fails. */
export function runPortForward(opts: PortForwardOptions): Promise<void> {
  return runTunnelService(
    opts,
    "port-forward listening",
    { target: opts.target },
    (conn, scope) => forward(conn, scope, opts),
  );
}

const FAILURE = "forward failed";

async function forward(conn: Deno.TcpConn, scope: ConnectionScope, opts: PortForwardOptions) {
  let tunnel;
  try {
    tunnel = await openClientTunnel(opts.target, scope, opts, FAILURE);
  } catch {
    conn.close();
    return;
  }
  await bridgeClient(conn, tunnel, opts.target, scope, opts, FAILURE);
}
