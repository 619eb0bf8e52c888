/**
 * What a listener's refusal means, for the sender's `listener refused connection` line. The wire
 * text stays Go's ("connection failed" for every dial error), so the code is what tells refused,
 * DNS, timeout and not allowed apart.
 */

const HINTS: Readonly<Record<string, string>> = {
  connection_refused: "the listener reached the target host, but nothing listens on that port",
  host_unreachable: "the listener has no route to the target host",
  network_unreachable: "the listener has no route to the target's network",
  timeout: "the listener's dial of the target timed out (its --connect-timeout)",
  dns_not_found: "the listener could not resolve the target's host name",
  dns_timeout: "the listener's DNS lookup of the target's host name timed out",
  not_allowed: "the target is not on the listener's --allow list; host names are matched " +
    "literally, without DNS: allow the name the client sends (or *.suffix:PORT), not its address",
};

/** The hint for a ConnectResponse code; undefined for "" and codes we do not know. */
export function rejectHint(code: string | undefined): string | undefined {
  return code && Object.hasOwn(HINTS, code) ? HINTS[code] : undefined;
}
