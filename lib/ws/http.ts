/** Minimal HTTP/1.1 head parsing and writing: exactly what a WebSocket handshake needs. */

export const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** A head that is not valid HTTP/1.1; the server answers 400. */
export class HttpParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HttpParseError";
  }
}

export interface RequestHead {
  method: string;
  target: string;
  version: string;
  headers: Headers;
}

export interface ResponseHead {
  version: string;
  status: number;
  statusText: string;
  headers: Headers;
}

const latin1 = new TextDecoder("latin1");
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function splitHead(head: Uint8Array): string[] {
  // latin1 keeps every byte as one char; Headers rejects anything it cannot carry.
  return latin1.decode(head).split("\r\n");
}

function parseHeaderLines(lines: string[]): Headers {
  const headers = new Headers();
  for (const line of lines) {
    if (line === "") throw new HttpParseError("empty header line");
    if (line[0] === " " || line[0] === "\t") throw new HttpParseError("obsolete header folding");
    const colon = line.indexOf(":");
    if (colon <= 0) throw new HttpParseError("header line without a name");
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) throw new HttpParseError("invalid header name");
    try {
      headers.append(name, line.slice(colon + 1).trim());
    } catch {
      throw new HttpParseError("invalid header value");
    }
  }
  return headers;
}

export function parseRequestHead(head: Uint8Array): RequestHead {
  const lines = splitHead(head);
  const m = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) (HTTP\/1\.[01])$/.exec(lines[0]);
  if (!m) throw new HttpParseError("invalid request line");
  return { method: m[1], target: m[2], version: m[3], headers: parseHeaderLines(lines.slice(1)) };
}

export function parseResponseHead(head: Uint8Array): ResponseHead {
  const lines = splitHead(head);
  const m = /^(HTTP\/1\.[01]) (\d{3})(?: (.*))?$/.exec(lines[0]);
  if (!m) throw new HttpParseError("invalid status line");
  return {
    version: m[1],
    status: Number(m[2]),
    statusText: m[3] ?? "",
    headers: parseHeaderLines(lines.slice(1)),
  };
}

/** Serialises a start line plus headers; rejects CR/LF injection through names or values. */
export function encodeHead(startLine: string, headers: Iterable<[string, string]>): Uint8Array {
  let text = startLine + "\r\n";
  for (const [name, value] of headers) {
    if (!TOKEN.test(name) || /[\r\n\0]/.test(value)) {
      throw new TypeError(`invalid header ${JSON.stringify(name)}`);
    }
    text += `${name}: ${value}\r\n`;
  }
  text += "\r\n";
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff) throw new TypeError("header text outside latin1");
    out[i] = c;
  }
  return out;
}

/** True when a comma-separated header value lists `token` (case-insensitive). */
export function hasToken(value: string | null, token: string): boolean {
  if (value === null) return false;
  const want = token.toLowerCase();
  return value.split(",").some((t) => t.trim().toLowerCase() === want);
}

/** Items of a comma-separated header, trimmed, empty ones dropped. */
export function tokenList(value: string | null): string[] {
  if (value === null) return [];
  return value.split(",").map((t) => t.trim()).filter((t) => t !== "");
}

/** Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2). */
export async function acceptKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(key + WS_GUID));
  return bytesToBase64(new Uint8Array(digest));
}

export function newKey(): string {
  return bytesToBase64(crypto.getRandomValues(new Uint8Array(16)));
}

/** A Sec-WebSocket-Key must be the base64 of 16 bytes. */
export function isValidKey(key: string | null): boolean {
  return key !== null && /^[A-Za-z0-9+/]{21}[AQgw]==$/.test(key);
}

function bytesToBase64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

export const STATUS_TEXT: Readonly<Record<number, string>> = {
  101: "Switching Protocols",
  200: "OK",
  204: "No Content",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  410: "Gone",
  426: "Upgrade Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** A URL safe to log or put in an error: no userinfo, no query (tokens live there). */
export function redactUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}
