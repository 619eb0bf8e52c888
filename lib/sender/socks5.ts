/**
 * The SOCKS5 subset the Go tool implements (RFC 1928, reference §5.1): no authentication, CONNECT,
 * IPv4/IPv6/domain addresses. Reads exactly the bytes each step needs (never more), so bytes a
 * client sends early stay in the socket for the tunnel. A failed handshake gets exactly one reply:
 * `05 FF` during method selection, `05 REP 00 01 0.0.0.0:0` during the request.
 */
import { deadline, DeadlineError } from "../async.ts";
import { AztunnelError } from "../errors.ts";
import { joinHostPort } from "../net/host_port.ts";
import { writeAll } from "../net/write_all.ts";
import type { ByteStream } from "../tunnel/bridge.ts";
import { formatIP, parseIP, to4 } from "../tunnel/ip.ts";
import { EnvelopeExchangeError, EnvelopeRejected } from "./open_tunnel.ts";

export const REP_SUCCEEDED = 0x00;
export const REP_GENERAL_FAILURE = 0x01;
export const REP_NOT_ALLOWED = 0x02;
export const REP_NETWORK_UNREACHABLE = 0x03;
export const REP_HOST_UNREACHABLE = 0x04;
export const REP_CONNECTION_REFUSED = 0x05;
export const REP_COMMAND_NOT_SUPPORTED = 0x07;
export const REP_ADDRESS_TYPE_NOT_SUPPORTED = 0x08;

export const SOCKS5_HANDSHAKE_TIMEOUT_MS = 30_000;

export interface Socks5Request {
  host: string;
  port: number;
  /** `host:port`, IPv6 in brackets, as the envelope carries it. */
  target: string;
}

/** The handshake failed; any reply due has already been written. */
export class Socks5HandshakeError extends AztunnelError {
  constructor(message: string) {
    super("socks5_handshake", message);
    this.name = "Socks5HandshakeError";
  }
}

const NO_ACCEPTABLE_METHODS = new Uint8Array([5, 0xff]);
const METHOD_NO_AUTH = new Uint8Array([5, 0]);

/** `05 REP 00 ATYP BND.ADDR BND.PORT`; failures (or no bind address) carry `0.0.0.0:0`. */
export function encodeReply(rep: number, bind?: { hostname: string; port: number }): Uint8Array {
  const ip = rep === REP_SUCCEEDED && bind ? parseIP(bind.hostname) : null;
  const port = ip ? bind!.port : 0;
  const v4 = ip ? to4(ip) : new Uint8Array(4);
  const addr = v4 ?? ip!;
  const out = new Uint8Array(4 + addr.length + 2);
  out.set([5, rep, 0, v4 ? 1 : 4]);
  out.set(addr, 4);
  out[4 + addr.length] = port >> 8;
  out[5 + addr.length] = port & 0xff;
  return out;
}

/** The REP for a failed tunnel open (reference §5.1, plus 0x02 for our `not_allowed`). */
export function replyCodeFor(err: unknown): number {
  if (err instanceof EnvelopeRejected) {
    switch (err.code) {
      case "not_allowed":
        return REP_NOT_ALLOWED;
      case "connection_refused":
        return REP_CONNECTION_REFUSED;
      case "network_unreachable":
        return REP_NETWORK_UNREACHABLE;
      default:
        // host_unreachable, timeout, dns_*, unclassified, and Go's code-less allowlist refusal.
        return REP_HOST_UNREACHABLE;
    }
  }
  if (err instanceof EnvelopeExchangeError) return REP_HOST_UNREACHABLE;
  // A relay dial failure (RelayDialError) or anything else.
  return REP_GENERAL_FAILURE;
}

/**
 * Runs method selection and reads the CONNECT request within `timeoutMs`. Throws
 * Socks5HandshakeError (after writing the failure reply, if any is due). The caller sends the
 * final reply (`encodeReply`) once the tunnel is open or has failed, and closes `io` on failure.
 */
export async function readSocks5Request(
  io: ByteStream,
  opts: { timeoutMs?: number } = {},
): Promise<Socks5Request> {
  let stage: "greeting" | "request" = "greeting";
  let replied = false;
  const reject = async (message: string, rep = REP_GENERAL_FAILURE): Promise<never> => {
    if (!replied) {
      replied = true;
      try {
        await writeAll(io, stage === "greeting" ? NO_ACCEPTABLE_METHODS : encodeReply(rep));
      } catch {
        // the client is gone; nothing to tell it
      }
    }
    throw new Socks5HandshakeError(message);
  };

  const until = performance.now() + (opts.timeoutMs ?? SOCKS5_HANDSHAKE_TIMEOUT_MS);

  /** Exactly `n` bytes; a dangling read after a timeout settles when the caller closes `io`. */
  const readExact = async (n: number): Promise<Uint8Array> => {
    const buf = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      let r: number | null;
      try {
        r = await deadline(io.read(buf.subarray(off)), until - performance.now());
      } catch (err) {
        if (err instanceof DeadlineError) return await reject("handshake timed out");
        throw err;
      }
      if (r === null) {
        throw new Socks5HandshakeError("client closed the connection during handshake");
      }
      off += r;
    }
    return buf;
  };

  try {
    const [ver, nmethods] = await readExact(2);
    if (ver !== 5) return await reject(`unsupported SOCKS version ${ver}`);
    if (nmethods === 0) return await reject("no authentication methods offered");
    const methods = await readExact(nmethods);
    if (!methods.includes(0)) return await reject("no acceptable authentication method");
    await writeAll(io, METHOD_NO_AUTH);

    stage = "request";
    const [rver, cmd, , atyp] = await readExact(4);
    if (rver !== 5) return await reject(`unsupported SOCKS version ${rver} in request`);
    if (cmd !== 1) {
      return await reject(`unsupported command ${cmd}`, REP_COMMAND_NOT_SUPPORTED);
    }
    let host: string;
    if (atyp === 1) host = formatIP(await readExact(4));
    else if (atyp === 4) host = formatIP(await readExact(16));
    else if (atyp === 3) {
      const [len] = await readExact(1);
      if (len === 0) return await reject("empty domain name");
      host = new TextDecoder().decode(await readExact(len));
    } else {
      return await reject(`unsupported address type ${atyp}`, REP_ADDRESS_TYPE_NOT_SUPPORTED);
    }
    const p = await readExact(2);
    const port = (p[0] << 8) | p[1];
    return { host, port, target: joinHostPort(host, port) };
  } catch (err) {
    if (err instanceof Socks5HandshakeError) throw err;
    throw new Socks5HandshakeError(`handshake failed: ${(err as Error).message}`);
  }
}
