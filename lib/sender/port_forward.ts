/**
 * `relay-sender port-forward`: every local TCP connection gets its own tunnel to one target. On a
 * warm leg that grants it, the client's first bytes go with the envelope (early data).
 */
import { ClientInput } from "./early_data.ts";
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
  const input = new ClientInput(conn);
  let tunnel;
  try {
    tunnel = await scope.open(target, input);
  } catch {
    // Deno cannot reset a TCP socket; a refusal still delivers nothing (early bytes are dropped).
    conn.close();
    return;
  }
  await scope.bridge(input, tunnel);
}
