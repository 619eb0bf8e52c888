/** `host:port` as Go's net package spells it: the one parser and joiner for flags, targets and URLs. */

export interface HostPort {
  hostname: string;
  port: number;
}

/** Go's net.SplitHostPort: `host:port` or `[host]:port`; the port is not validated. */
export function splitHostPort(hostport: string): { host: string; port: string } | null {
  const i = hostport.lastIndexOf(":");
  if (i < 0) return null;
  let host: string;
  let j = 0;
  let k = 0;
  if (hostport[0] === "[") {
    const end = hostport.indexOf("]");
    if (end < 0 || end + 1 !== i) return null;
    host = hostport.slice(1, end);
    j = 1;
    k = end + 1;
  } else {
    host = hostport.slice(0, i);
    if (host.includes(":")) return null;
  }
  if (hostport.slice(j).includes("[")) return null;
  if (hostport.slice(k).includes("]")) return null;
  return { host, port: hostport.slice(i + 1) };
}

/** A TCP port as a target or allowlist entry spells it: 1-5 digits, 1-65535; else null. */
export function parsePort(text: string): number | null {
  if (!/^\d{1,5}$/.test(text)) return null;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : null;
}

/**
 * A listen address (`host:port`, `[v6]:port`, `:port`; port 0-65535, 0 = any); null when
 * malformed. The host is returned as written: an empty host is the caller's to interpret.
 */
export function parseHostPort(text: string): HostPort | null {
  const hp = splitHostPort(text.trim());
  if (!hp || !/^\d{1,5}$/.test(hp.port)) return null;
  const port = Number(hp.port);
  return port > 65535 ? null : { hostname: hp.host, port };
}

/** Go's net.JoinHostPort: brackets hosts that contain a colon. */
export function joinHostPort(host: string, port: string | number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
