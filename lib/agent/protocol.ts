/**
 * The agent socket's handshake: the client sends `CONNECT host:port\n`, the agent answers `OK\n` or
 * `ERR <code> <message>\n`, then raw bytes flow both ways (with half-close). Lines are ASCII and
 * bounded, so a confused or hostile peer cannot make either side buffer without end.
 *
 * Early data: `CONNECT host:port early\n` asks to send data before the answer. The agent says
 * `EARLY\n` at once (it has taken the request and will answer it), the client's bytes follow
 * while the tunnel opens, then `OK`/`ERR` as above (on ERR the agent discards what it got). An
 * agent from an older build refuses that line (ERR bad_request, REQUEST_SYNTAX) before any data
 * was sent, so the client asks again without `early` on a new connection: nothing is lost.
 */
import { AztunnelError, firstLine } from "../errors.ts";
import type { ByteStream } from "../tunnel/bridge.ts";

/** The longest line either side accepts, newline included (a DNS name is at most 253 bytes). */
export const MAX_LINE = 512;
const NL = 0x0a;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A line that is not what the protocol allows (code `agent_protocol`). */
export class AgentProtocolError extends AztunnelError {
  constructor(message: string) {
    super("agent_protocol", message);
    this.name = "AgentProtocolError";
  }
}

/** The agent answered ERR: the code is the listener's (`not_allowed`, …) or the agent's own. */
export class AgentRefused extends AztunnelError {
  constructor(code: string, message: string) {
    super(code, message);
    this.name = "AgentRefused";
  }
}

export type AgentReply = { ok: true } | { ok: false; code: string; message: string };

export interface AgentRequest {
  target: string;
  /** The client sends data before the answer (`EARLY` first). */
  early: boolean;
}

/** What every build says of a request line it cannot parse (older ones: of an `early` line). */
export const REQUEST_SYNTAX = "expected CONNECT host:port";

/** The agent's first line to an early request: send the data now, the answer follows. */
export const EARLY_ACK = "EARLY";

export function encodeRequest(target: string, early = false): Uint8Array {
  return encoder.encode(`CONNECT ${target}${early ? " early" : ""}\n`);
}

/** A request line (without its newline); throws AgentProtocolError. */
export function parseRequest(line: string): AgentRequest {
  const m = /^CONNECT ([\x21-\x7e]+?)( early)?$/.exec(line);
  if (!m) throw new AgentProtocolError(REQUEST_SYNTAX);
  return { target: m[1], early: m[2] !== undefined };
}

export function encodeEarlyAck(): Uint8Array {
  return encoder.encode(`${EARLY_ACK}\n`);
}

/** An older agent's refusal of an `early` request line: ask again without it. */
export function refusesEarly(reply: AgentReply): boolean {
  return !reply.ok && reply.code === "bad_request" && reply.message === REQUEST_SYNTAX;
}

export function encodeReply(reply: AgentReply): Uint8Array {
  if (reply.ok) return encoder.encode("OK\n");
  const code = /^[A-Za-z0-9_.-]+$/.test(reply.code) ? reply.code : "failed";
  // One printable line, short enough for the client's bound.
  const message = firstLine(reply.message).replace(/[^\x20-\x7e]/g, "?").slice(0, 400);
  return encoder.encode(`ERR ${code} ${message}\n`);
}

/** A reply line (without its newline); throws AgentProtocolError. */
export function parseReply(line: string): AgentReply {
  if (line === "OK") return { ok: true };
  const m = /^ERR ([A-Za-z0-9_.-]+)(?: (.*))?$/.exec(line);
  if (!m) throw new AgentProtocolError(`unexpected reply from agent: ${JSON.stringify(line)}`);
  return { ok: false, code: m[1], message: m[2] ?? "" };
}

export interface Line {
  /** Without the newline. */
  line: string;
  /** Bytes that came after the newline in the same read: the start of the data. */
  rest: Uint8Array;
}

/**
 * Reads one line of at most MAX_LINE bytes. Null at EOF before any byte; throws
 * AgentProtocolError for a longer line, a line cut by EOF or one that is not ASCII.
 */
export async function readLine(r: Pick<ByteStream, "read">): Promise<Line | null> {
  const buf = new Uint8Array(MAX_LINE);
  let len = 0;
  for (;;) {
    const n = await r.read(buf.subarray(len));
    if (n === null) {
      if (len === 0) return null;
      throw new AgentProtocolError("line cut short by EOF");
    }
    const nl = buf.subarray(len, len + n).indexOf(NL);
    len += n;
    if (nl >= 0) {
      const end = len - n + nl;
      const bytes = buf.subarray(0, end);
      if (bytes.some((b) => b > 0x7e || b < 0x20)) {
        throw new AgentProtocolError("line is not printable ASCII");
      }
      return { line: decoder.decode(bytes), rest: buf.slice(end + 1, len) };
    }
    if (len === MAX_LINE) throw new AgentProtocolError(`line longer than ${MAX_LINE} bytes`);
  }
}

/** `stream` whose first reads return `head` (bytes already read past a line). */
export function withPrefix<S extends ByteStream>(stream: S, head: Uint8Array): ByteStream {
  let pending = head;
  return {
    read(p) {
      if (pending.length === 0) return stream.read(p);
      const n = Math.min(p.length, pending.length);
      p.set(pending.subarray(0, n));
      pending = pending.subarray(n);
      return Promise.resolve(n);
    },
    write: (p) => stream.write(p),
    closeWrite: () => stream.closeWrite(),
    close: () => stream.close(),
  };
}
