/** Binding a local TCP listener; failure is a runtime error (`listen_failed`) as in Go. */
import { AztunnelError, errorMessage } from "../errors.ts";
import { type HostPort, joinHostPort } from "./host_port.ts";

export function listenTcp(addr: HostPort): Deno.TcpListener {
  try {
    return Deno.listen({ hostname: addr.hostname, port: addr.port, transport: "tcp" });
  } catch (err) {
    throw new AztunnelError(
      "listen_failed",
      `listen ${joinHostPort(addr.hostname, addr.port)}: ${errorMessage(err)}`,
      { cause: err },
    );
  }
}

/** Sets the socket options of an accepted local connection: no Nagle delay, optional keepalive. */
export function tuneTcp(conn: Deno.TcpConn, keepAlive: boolean): void {
  try {
    conn.setNoDelay(true);
    if (keepAlive) conn.setKeepAlive(true);
  } catch {
    // The client already left; its handler will notice.
  }
}
