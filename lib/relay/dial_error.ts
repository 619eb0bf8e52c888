/** Typed relay dial failures and the classification every relay dial shares. */
import { AztunnelError, errorMessage, firstLine } from "../errors.ts";
import { WsError, WsHandshakeError } from "../ws/errors.ts";
import { redact } from "./redact.ts";
import type { TokenProvider } from "./token.ts";

export type RelayDialErrorCode =
  | "auth_failed" // 401/403 from the relay (or a listener rejecting with those)
  | "rejected" // any other non-101 answer, including a listener's sb-hc-statusCode
  | "dial_timeout" // the budget (or the single attempt's deadline) ran out
  | "relay_failed" // no usable answer: DNS, TCP, TLS, protocol, token fetch
  | "aborted"; // the caller's signal fired

export class RelayDialError extends AztunnelError {
  declare readonly code: RelayDialErrorCode;
  /** The HTTP status when the relay answered one. */
  readonly status?: number;
  readonly statusText?: string;
  /** The message without its explanation, for log lines next to which the full text is printed. */
  readonly summary: string;
  constructor(
    code: RelayDialErrorCode,
    message: string,
    opts: { cause?: unknown; status?: number; statusText?: string; summary?: string } = {},
  ) {
    super(code, redact(message), { cause: opts.cause });
    this.name = "RelayDialError";
    this.status = opts.status;
    this.statusText = opts.statusText;
    this.summary = opts.summary === undefined ? firstLine(this.message) : redact(opts.summary);
  }
}

/**
 * The short form of an error: its `summary` when it has one (an Entra failure lists every
 * credential tried and how to fix it in ~700 characters), else the first line of its message.
 */
export function errorSummary(err: unknown): string {
  const summary = (err as { summary?: unknown } | null)?.summary;
  if (typeof summary === "string" && summary !== "") return summary;
  return firstLine(typeof err === "string" ? err : errorMessage(err));
}

/** Which relay role the refused credential needed. */
export type RelayRole = "Sender" | "Listener";

/** A 401/403 message that tells the user which setting to fix. */
export function authFailureMessage(
  status: number,
  kind: TokenProvider["kind"] | undefined,
  role: RelayRole,
): string {
  const hint = kind === "entra"
    ? `check that the identity has the Azure Relay ${role} role`
    : kind === "sas"
    ? `check AZTUNNEL_KEY_NAME/AZTUNNEL_KEY and that the policy grants ${
      role === "Sender" ? "Send" : "Listen"
    }`
    : `check AZTUNNEL_KEY_NAME/AZTUNNEL_KEY or that the identity has the Azure Relay ${role} role`;
  return `relay refused the credentials (HTTP ${status}): ${hint}`;
}

export function isAuthStatus(status: number): boolean {
  return status === 401 || status === 403;
}

/** `HTTP 404 Not Found`, never the request URL. */
export function describeDialFailure(err: unknown): string {
  if (err instanceof WsHandshakeError) {
    return redact(`HTTP ${err.status}${err.statusText ? ` ${err.statusText}` : ""}`);
  }
  const text = redact(errorMessage(err));
  // A private relay (relay-server --tls-cert, a proxy's CA) is the usual cause; say the fix.
  if (/UnknownIssuer|invalid peer certificate|certificate verify failed/i.test(text)) {
    return `${text} (the relay's certificate is not trusted: pass its CA with --relay-ca-cert)`;
  }
  return text;
}

/** True when the relay never answered the upgrade: the attempt may be repeated. */
export function isNoResponse(err: unknown): boolean {
  return err instanceof WsError &&
    (err.code === "handshake_timeout" || err.code === "connection_lost");
}
