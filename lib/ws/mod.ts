/** lib/ws public surface: an RFC 6455 WebSocket over Deno.Conn. */
export { connectWebSocket, type HeaderPairs, type WsConnectOptions } from "./client.ts";
export { WebSocketConn } from "./conn.ts";
export { WsError, type WsErrorCode, WsHandshakeError } from "./errors.ts";
export {
  type HttpServer,
  type IncomingRequest,
  type RespondOptions,
  serveHttp,
  type ServeHttpOptions,
  type UpgradeOptions,
} from "./server.ts";
export type { CloseInfo, MessageSocket, WsMessage } from "./types.ts";
