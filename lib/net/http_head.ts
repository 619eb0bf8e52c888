/**
 * HTTP/1.1 heads: finding the end of one in a buffer, parsing request and status lines with their
 * headers, writing one, and the status-text table. Shared by the WebSocket handshake (lib/ws) and
 * the ops endpoint (lib/observe); bodies are each caller's business.
 *
 * Reading is as lenient as Go's net/http (RFC 9112 §2.2): a bare LF ends a line as CRLF does, and
 * empty lines before a request line are skipped. Anything else malformed is an HttpParseError.
 */
import { AztunnelError } from "../errors.ts";

/** A head that is not valid HTTP/1.1; a server answers 400. */
export class HttpParseError extends AztunnelError {
  declare readonly code: "bad_http_head";
  constructor(message: string) {
    super("bad_http_head", message);
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

/** Where a head ends in a buffer: `end` before its last line break, `next` after the empty line. */
export interface HeadEnd {
  end: number;
  next: number;
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * The first empty line in buf[start, to): CRLF or LF line ends. `from` (>= start) lets a caller
 * that already scanned a prefix skip it; it must leave the last 3 scanned bytes to rescan.
 */
export function findHeadEnd(
  buf: Uint8Array,
  start: number,
  to: number,
  from = start,
): HeadEnd | null {
  for (let i = Math.max(from, start); i < to; i++) {
    if (buf[i] !== LF) continue;
    const end = i > start && buf[i - 1] === CR ? i - 1 : i;
    if (i + 1 < to && buf[i + 1] === LF) return { end, next: i + 2 };
    if (i + 2 < to && buf[i + 1] === CR && buf[i + 2] === LF) return { end, next: i + 3 };
  }
  return null;
}

const latin1 = new TextDecoder("latin1");
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) (HTTP\/1\.[01])$/;
const STATUS_LINE = /^(HTTP\/1\.[01]) (\d{3})(?: (.*))?$/;

function splitHead(head: Uint8Array): string[] {
  // latin1 keeps every byte as one char; Headers rejects anything it cannot carry.
  return latin1.decode(head).split(/\r?\n/);
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

/** A request head without its final empty line (as `findHeadEnd`'s `end` cuts it). */
export function parseRequestHead(head: Uint8Array): RequestHead {
  const lines = splitHead(head);
  let first = 0;
  while (first < lines.length - 1 && lines[first] === "") first++;
  const m = REQUEST_LINE.exec(lines[first]);
  if (!m) throw new HttpParseError("invalid request line");
  return {
    method: m[1],
    target: m[2],
    version: m[3],
    headers: parseHeaderLines(lines.slice(first + 1)),
  };
}

/** A response head without its final empty line. */
export function parseResponseHead(head: Uint8Array): ResponseHead {
  const lines = splitHead(head);
  const m = STATUS_LINE.exec(lines[0]);
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

/** `HTTP/1.1 <status> <reason>`, the reason from STATUS_TEXT unless given. */
export function statusLine(status: number, reason = STATUS_TEXT[status] ?? ""): string {
  return `HTTP/1.1 ${status} ${reason}`.trimEnd();
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

export const STATUS_TEXT: Readonly<Record<number, string>> = {
  101: "Switching Protocols",
  200: "OK",
  204: "No Content",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  407: "Proxy Authentication Required",
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
