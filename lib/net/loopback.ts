/**
 * Loopback names and addresses: `localhost` and its subdomains (RFC 6761), 127.0.0.0/8, ::1 and
 * IPv4-mapped 127/8; brackets and case do not matter. The one test for "this never leaves the host".
 */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "localhost" || h.endsWith(".localhost") || h === "::1") return true;
  const v4 = h.startsWith("::ffff:") ? h.slice(7) : h;
  // What `new URL` makes of ::ffff:127.x.y.z: ::ffff:7fxx:yyzz.
  if (/^7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(v4)) return true;
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(v4);
  return m !== null && m.slice(1).every((o) => Number(o) <= 255);
}
