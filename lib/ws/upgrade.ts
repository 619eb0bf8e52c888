/** The client's half of the RFC 6455 opening handshake: the GET it sends, the 101 it checks. */

import { encodeHead, hasToken, parseResponseHead, type ResponseHead } from "../net/http_head.ts";
import { writeAll } from "../net/write_all.ts";
import { readErrorBody } from "./error_body.ts";
import { WsError, WsHandshakeError } from "./errors.ts";
import { BufferedConn } from "./io.ts";
import { acceptKey, newKey } from "./keys.ts";
import { redactUrl } from "./url.ts";

const MAX_RESPONSE_HEAD = 16 * 1024;

export interface UpgradeRequest {
  target: URL;
  /** Extra headers, names as written; a Host among them replaces ours. */
  headers: [string, string][];
  protocols: string[];
}

export interface Upgraded {
  /** The conn's buffer: frames the server sent right behind its 101 are in it already. */
  io: BufferedConn;
  headers: Headers;
  /** The subprotocol the server chose, "" for none. */
  protocol: string;
}

/**
 * Upgrades `conn`. A refusal is a WsHandshakeError with the server's status, headers and body; a
 * 101 that breaks the RFC is WsError "protocol_error". Parse errors of the head are the caller's.
 */
export async function requestUpgrade(conn: Deno.Conn, req: UpgradeRequest): Promise<Upgraded> {
  const where = redactUrl(req.target);
  const io = new BufferedConn(conn);
  const key = newKey();
  await writeAll(
    conn,
    encodeHead(`GET ${requestTarget(req.target)} HTTP/1.1`, headerLines(req, key)),
  );
  const head = await io.readHead(MAX_RESPONSE_HEAD);
  if (head === null) {
    throw new WsError("connect_failed", `${where} closed the connection without answering`);
  }
  const res = parseResponseHead(head);
  if (res.status !== 101) {
    const body = await readErrorBody(io, res);
    throw new WsHandshakeError(
      `WebSocket upgrade to ${where} refused: ${res.status} ${res.statusText}`.trimEnd(),
      { status: res.status, statusText: res.statusText, headers: res.headers, body },
    );
  }
  const protocol = await validateUpgrade(res, key, req.protocols, where);
  return { io, headers: res.headers, protocol };
}

function requestTarget(url: URL): string {
  return (url.pathname || "/") + url.search;
}

function headerLines(req: UpgradeRequest, key: string): [string, string][] {
  const lines: [string, string][] = [];
  if (!req.headers.some(([name]) => name.toLowerCase() === "host")) {
    lines.push(["Host", req.target.host]);
  }
  lines.push(
    ["Upgrade", "websocket"],
    ["Connection", "Upgrade"],
    ["Sec-WebSocket-Key", key],
    ["Sec-WebSocket-Version", "13"],
  );
  if (req.protocols.length > 0) lines.push(["Sec-WebSocket-Protocol", req.protocols.join(", ")]);
  lines.push(...req.headers);
  return lines;
}

async function validateUpgrade(
  res: ResponseHead,
  key: string,
  protocols: string[],
  where: string,
): Promise<string> {
  const fail = (why: string) =>
    new WsError("protocol_error", `bad upgrade response from ${where}: ${why}`);
  if (res.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    throw fail("Upgrade is not websocket");
  }
  if (!hasToken(res.headers.get("connection"), "upgrade")) {
    throw fail("Connection does not contain upgrade");
  }
  if (res.headers.get("sec-websocket-accept") !== await acceptKey(key)) {
    throw fail("wrong Sec-WebSocket-Accept");
  }
  if (res.headers.has("sec-websocket-extensions")) throw fail("extension not offered");
  const protocol = res.headers.get("sec-websocket-protocol") ?? "";
  if (protocol !== "" && !protocols.includes(protocol)) {
    throw fail(`subprotocol ${JSON.stringify(protocol)} was not offered`);
  }
  return protocol;
}
