/**
 * Shared helpers for the relay-server socket tests. Named *_test.ts only to sit with the tests it
 * serves; it registers no tests itself (tests registered here would run once per importing file).
 */
import assert from "node:assert/strict";
import {
  connectWebSocket,
  type WebSocketConn,
  WsHandshakeError,
  type WsMessage,
} from "../../lib/ws/mod.ts";
import { createSasToken } from "../../lib/relay/sas.ts";
import { type RelayServer, type SasPolicy, startRelayServer } from "../../lib/server/mod.ts";
import type { RelayServerOptions } from "../../lib/server/options.ts";

export const POLICIES: SasPolicy[] = [
  { name: "all", key: "k-all", rights: ["Listen", "Send", "Manage"] },
  { name: "manage", key: "k-manage", rights: ["Manage"] },
  { name: "listen", key: "k-listen", rights: ["Listen"] },
  { name: "send", key: "k-send", rights: ["Send"] },
];

/**
 * A SAS token for `path` on `host` (the relay's host, which the relay checks) signed with one of
 * POLICIES, valid for an hour, as the Go tool makes it.
 */
export async function sasToken(path: string, policy = "all", host = "127.0.0.1"): Promise<string> {
  const p = POLICIES.find((x) => x.name === policy);
  if (!p) throw new Error(`no policy ${policy}`);
  return await createSasToken(`https://${host}/${path}`, p.name, p.key, Date.now() / 1000 + 3600);
}

/** A header of an accept message, looked up case-insensitively (as every listener does). */
export function connectHeader(accept: AcceptMessage, name: string): string | undefined {
  const want = name.toLowerCase();
  return Object.entries(accept.connectHeaders).find(([k]) => k.toLowerCase() === want)?.[1];
}

/** Runs `fn` against a fresh relay on a free loopback port; always closes it. */
export async function withRelay(
  opts: RelayServerOptions,
  fn: (srv: RelayServer) => Promise<void>,
): Promise<void> {
  const srv = await startRelayServer({ bind: "127.0.0.1:0", policies: POLICIES, ...opts });
  try {
    await fn(srv);
  } finally {
    await srv.close();
  }
}

export interface ClientOptions {
  token?: string;
  /** Put the token in the ServiceBusAuthorization header instead of the query. */
  header?: boolean;
  headers?: Record<string, string>;
  protocols?: string[];
  /** Extra query text (`a=1&b=2`). */
  query?: string;
  caCerts?: string[];
}

function hcUrl(srv: RelayServer, path: string, action: string, token: string, o: ClientOptions) {
  const q = [`sb-hc-action=${action}`];
  if (o.query) q.unshift(o.query);
  if (!o.header) q.push(`sb-hc-token=${encodeURIComponent(token)}`);
  return `${srv.url}/$hc/${path}?${q.join("&")}`;
}

async function dial(
  srv: RelayServer,
  path: string,
  action: "listen" | "connect",
  o: ClientOptions,
): Promise<WebSocketConn> {
  const token = o.token ??
    await sasToken(decodeURIComponent(path), "all", new URL(srv.url).hostname);
  const headers: Record<string, string> = { ...o.headers };
  if (o.header) headers.ServiceBusAuthorization = token;
  return await connectWebSocket(hcUrl(srv, path, action, token, o), {
    headers,
    protocols: o.protocols,
    caCerts: o.caCerts,
    proxy: "none",
    timeoutMs: 10_000,
  });
}

/** Opens a listener control channel (token in the query unless given otherwise). */
export function listen(
  srv: RelayServer,
  path: string,
  token?: string,
  o: ClientOptions = {},
): Promise<WebSocketConn> {
  return dial(srv, path, "listen", { ...o, token: token ?? o.token });
}

/** Starts a sender; resolves once its rendezvous completes. */
export function connectSender(
  srv: RelayServer,
  path: string,
  o: ClientOptions = {},
): Promise<WebSocketConn> {
  return dial(srv, path, "connect", o);
}

export interface AcceptMessage {
  address: string;
  id: string;
  connectHeaders: Record<string, string>;
  remoteEndpoint: { address: string; port: number };
}

/** Reads the next accept message from a control channel and dials its address. */
export async function acceptConnection(
  control: WebSocketConn,
  protocols?: string[],
  caCerts?: string[],
): Promise<{ accept: AcceptMessage; conn: WebSocketConn }> {
  const msg = await control.receive();
  assert.ok(msg && msg.type === "text", "expected an accept message");
  const accept = JSON.parse(msg.data).accept as AcceptMessage;
  const conn = await connectWebSocket(accept.address, { protocols, caCerts, proxy: "none" });
  return { accept, conn };
}

/** Asserts that a dial failed with `status` (and a reason matching `reason`). */
export async function expectStatus(
  dialing: Promise<WebSocketConn>,
  status: number,
  reason?: RegExp,
): Promise<WsHandshakeError> {
  let conn: WebSocketConn | undefined;
  try {
    conn = await dialing;
  } catch (err) {
    assert.ok(err instanceof WsHandshakeError, `expected HTTP ${status}, got ${err}`);
    assert.equal(err.status, status, `${err.status} ${err.statusText}`);
    if (reason) assert.match(err.statusText, reason);
    return err;
  }
  conn.closeNow();
  await conn.closed;
  throw new assert.AssertionError({ message: `expected HTTP ${status}, got 101` });
}

/** Reads one message and asserts it is `want`. */
export async function expectMessage(conn: WebSocketConn, want: WsMessage | null): Promise<void> {
  assert.deepEqual(await conn.receive(), want);
}

/** Closes a bridged pair from the sender side the way a peer would: Close, echo, both closed. */
export async function closePair(
  sender: WebSocketConn,
  listener: WebSocketConn,
  code = 1000,
  reason = "",
): Promise<void> {
  const closing = sender.close(code, reason);
  assert.equal(await listener.receive(), null);
  assert.deepEqual(listener.closeInfo, { code, reason });
  await listener.close(code, reason);
  await closing;
  await Promise.all([sender.closed, listener.closed]);
}
