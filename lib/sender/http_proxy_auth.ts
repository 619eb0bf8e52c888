/**
 * Basic proxy authentication (RFC 9110 §11.7, RFC 7617) for `relay-sender http-proxy`: one
 * `user:password`, compared in constant time; a request without it, or with another, gets 407.
 */
import { constantTimeEqual } from "../crypto/constant_time.ts";
import { decodeBase64 } from "../crypto/base64.ts";
import { UsageError } from "../errors.ts";
import { HttpProxyError } from "./http_proxy_reply.ts";

/** The challenge a 407 carries. */
export const PROXY_AUTHENTICATE = 'Basic realm="aztunnel"';

export class ProxyAuth {
  readonly #expected: Uint8Array;

  /** `text` is `user:password`; `source` names the flag or file in the UsageError. */
  constructor(text: string, source: string) {
    const colon = text.indexOf(":");
    if (colon <= 0) {
      throw new UsageError(`invalid ${source}: expected USER:PASSWORD with a non-empty user`);
    }
    if ([...text].some((c) => c < " " || c === "\x7f")) {
      throw new UsageError(`invalid ${source}: control characters are not allowed`);
    }
    this.#expected = new TextEncoder().encode(text);
  }

  /** True when a `Proxy-Authorization` value carries these credentials. */
  accepts(header: string | null): boolean {
    const m = /^basic[ \t]+([A-Za-z0-9+/=]+)[ \t]*$/i.exec(header ?? "");
    const given = m ? decodeBase64(m[1]) : null;
    // Compared even when absent, so the time taken says nothing about what was sent.
    return constantTimeEqual(given ?? new Uint8Array(0), this.#expected) && given !== null;
  }

  /** Throws the 407 unless `header` carries the credentials. */
  check(header: string | null): void {
    if (this.accepts(header)) return;
    const why = header === null ? "proxy credentials required" : "proxy credentials rejected";
    throw new HttpProxyError(407, "auth_required", why, [[
      "Proxy-Authenticate",
      PROXY_AUTHENTICATE,
    ]]);
  }
}
