/** `relay-sender port-forward`: every local TCP connection gets its own tunnel to one target. */
import { type ConnectionScope, serveTunnels, type TunnelServiceOptions } from "./tunnel_service.ts";

export interface PortForwardOptions extends TunnelServiceOptions {
  target: string;
}

/** Listens and forwards until `signal` aborts, then drains. Throws when the bind fails. */
export function runPortForward(opts: PortForwardOptions): Promise<void> {
  return serveTunnels(opts, {
    listening: "port-forward listening",
    attrs: { target: opts.target },
    failure: "forward failed",
    handle: (conn, scope) => forward(conn, scope, opts.target),
  });
}

async function forward(conn: Deno.TcpConn, scope: ConnectionScope, target: string) {
  let tunnel;
  try {
    tunnel = await scope.open(target);
  } catch {
    conn.close();
    return;
  }
  await scope.bridge(conn, tunnel);
}
