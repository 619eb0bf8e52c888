/**
 * IP address and CIDR handling with Go's `net` semantics (the allowlist and the SOCKS5 address
 * printer must agree with the Go tool): strict dotted IPv4 (no leading zeros), RFC 4291 IPv6 text
 * with an optional trailing dotted quad, no zones, and IPv4-mapped IPv6 treated as IPv4.
 */

/** 4 bytes for an IPv4 literal, 16 for IPv6. */
export type IP = Uint8Array;

export function parseIPv4(s: string): IP | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p[0] === "0")) return null;
    const n = Number(p);
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

export function parseIPv6(s: string): IP | null {
  if (s.includes("%")) return null; // zones never match an address
  const dbl = s.indexOf("::");
  if (dbl >= 0 && s.indexOf("::", dbl + 1) >= 0) return null;
  const head = parseGroups(dbl >= 0 ? s.slice(0, dbl) : s, dbl < 0);
  const tail = dbl >= 0 ? parseGroups(s.slice(dbl + 2), true) : [];
  if (!head || !tail) return null;
  const total = head.length + tail.length;
  // Without `::` all 16 bytes are spelled out; with it, `::` stands for at least one group.
  if (dbl < 0 ? total !== 16 : total > 14) return null;
  const out = new Uint8Array(16);
  out.set(head, 0);
  out.set(tail, 16 - tail.length);
  return out;
}

/** The bytes of `:`-separated hex groups; a dotted quad may end them when `quadLast`. */
function parseGroups(text: string, quadLast: boolean): number[] | null {
  if (text === "") return [];
  const groups = text.split(":");
  const bytes: number[] = [];
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i];
    if (quadLast && i === groups.length - 1 && g.includes(".")) {
      const v4 = parseIPv4(g);
      if (!v4) return null;
      bytes.push(...v4);
    } else if (/^[0-9a-fA-F]{1,4}$/.test(g)) {
      const w = parseInt(g, 16);
      bytes.push(w >> 8, w & 0xff);
    } else {
      return null;
    }
  }
  return bytes;
}

/** Like Go's net.ParseIP: IPv4 or IPv6 text, else null. */
export function parseIP(s: string): IP | null {
  if (s.includes(":")) return parseIPv6(s);
  return parseIPv4(s);
}

/** The 4-byte form of an IPv4 or IPv4-mapped IPv6 address (Go's IP.To4), else null. */
export function to4(ip: IP): IP | null {
  if (ip.length === 4) return ip;
  for (let i = 0; i < 10; i++) if (ip[i] !== 0) return null;
  if (ip[10] !== 0xff || ip[11] !== 0xff) return null;
  return ip.subarray(12);
}

/** Go's IP.String: dotted IPv4 (also for IPv4-mapped IPv6), otherwise RFC 5952 compressed IPv6. */
export function formatIP(ip: IP): string {
  const v4 = to4(ip);
  if (v4) return Array.from(v4).join(".");
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((ip[i] << 8) | ip[i + 1]);
  // Longest run of ≥ 2 zero words, leftmost on a tie.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(":");
  if (bestStart < 0) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLen))}`;
}

/** A network as Go's net.IPNet after ParseCIDR: masked address and mask of the same family. */
export interface Cidr {
  readonly ip: IP;
  readonly mask: Uint8Array;
}

/** Go's net.ParseCIDR (network part only); null when `s` is not `addr/prefix`. */
export function parseCidr(s: string): Cidr | null {
  const slash = s.indexOf("/");
  if (slash < 0) return null;
  const addrText = s.slice(0, slash);
  const bitsText = s.slice(slash + 1);
  const ip = parseIP(addrText);
  if (!ip || !/^\d+$/.test(bitsText)) return null;
  const bits = Number(bitsText);
  const total = ip.length * 8;
  if (bits > total) return null;
  const mask = new Uint8Array(ip.length);
  for (let i = 0; i < ip.length; i++) {
    const b = Math.max(0, Math.min(8, bits - i * 8));
    mask[i] = b === 0 ? 0 : (0xff << (8 - b)) & 0xff;
  }
  return { ip: ip.map((b, i) => b & mask[i]), mask };
}

/** Go's IPNet.Contains, including its IPv4-mapped quirks (`::/0` does not contain IPv4). */
export function cidrContains(net: Cidr, ip: IP): boolean {
  const nn = to4(net.ip) ?? net.ip;
  const m = net.mask.length === 16 && nn.length === 4 ? net.mask.subarray(12) : net.mask;
  const x = to4(ip) ?? ip;
  if (x.length !== nn.length) return false;
  for (let i = 0; i < x.length; i++) {
    if ((nn[i] & m[i]) !== (x[i] & m[i])) return false;
  }
  return true;
}
