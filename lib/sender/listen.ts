/** Binding the local TCP listener of a sender mode; failure is a runtime error as in Go. */
import { AztunnelError, errorMessage } from "../errors.ts";
import { joinHostPort } from "../tunnel/ip.ts";

export interface BindAddress {
  hostname: string;
  port: number;
}

export function listenTcp(bind: BindAddress): Deno.TcpListener {
  try {
    return Deno.listen({ hostname: bind.hostname, port: bind.port, transport: "tcp" });
  } catch (err) {
    throw new AztunnelError(
      "listen_failed",
      `listen ${joinHostPort(bind.hostname, bind.port)}: ${errorMessage(err)}`,
      { cause: err },
    );
  }
}

/** `host:port` of a bound listener, IPv6 bracketed, for the `bind=` log attribute. */
export function formatAddr(addr: Deno.NetAddr): string {
  return joinHostPort(addr.hostname, addr.port);
}
