/** Validation of a sender's `<host:port>` argument. */
import { UsageError } from "../errors.ts";
import { parsePort, splitHostPort } from "../net/host_port.ts";
import { parseIPv6 } from "../tunnel/ip.ts";

/**
 * Returns the envelope target for `text`: `host:port` or `[v6]:port` unchanged; an unbracketed
 * `v6:port` (what ssh's `%h:%p` gives for an IPv6 host) gets brackets. Throws UsageError otherwise.
 */
export function normalizeTarget(text: string): string {
  const hp = splitHostPort(text);
  if (hp && hp.host !== "" && parsePort(hp.port) !== null) return text;
  const i = text.lastIndexOf(":");
  if (!hp && i > 0 && parsePort(text.slice(i + 1)) !== null && parseIPv6(text.slice(0, i))) {
    return `[${text.slice(0, i)}]:${text.slice(i + 1)}`;
  }
  throw new UsageError(`invalid target "${text}": expected host:port`);
}
