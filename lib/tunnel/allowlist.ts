/**
 * The listener's `--allow` list, matched like the Go tool (reference §4.1): `host:port`, `CIDR:port`,
 * `CIDR:*`, `*`; hosts compared literally (no DNS), ports compared as strings. Deliberate
 * differences: bracketed IPv6 entries (`[::1]:22`, `[fd00::/8]:*`) match; wildcards `*:PORT` (any
 * host) and `*.suffix:PORT` / `*.suffix:*` (names ending in `.suffix`, any case, not `suffix`
 * itself) match, where Go compares them as the literal host `*`; and malformed entries (`*:*`, any
 * other `*`, an empty host or one with whitespace, a port not written the way a target writes it,
 * like `080`) are a startup error instead of being skipped or matched literally.
 */
import { UsageError } from "../errors.ts";
import { splitHostPort } from "../net/host_port.ts";
import { type Cidr, cidrContains, parseCidr, parseIP } from "./ip.ts";

type HostRule =
  | { kind: "name"; name: string }
  | { kind: "cidr"; net: Cidr }
  /** `*` as the host: any host. */
  | { kind: "anyHost" }
  /** `*.suffix`: `dotSuffix` is `.suffix` in lower case. */
  | { kind: "suffix"; dotSuffix: string };

interface Rule {
  readonly any: boolean;
  readonly host?: HostRule;
  /** `*` or the literal port text. */
  readonly port?: string;
}

export class Allowlist {
  readonly entries: readonly string[];
  readonly #rules: readonly Rule[];

  constructor(entries: readonly string[], rules: readonly Rule[]) {
    this.entries = entries;
    this.#rules = rules;
  }

  /** True when the envelope target may be dialled. A target that does not split is always denied. */
  allows(target: string): boolean {
    const hp = splitHostPort(target);
    if (!hp) return false;
    const ip = parseIP(hp.host);
    for (const r of this.#rules) {
      if (r.any) return true;
      if (r.port !== "*" && r.port !== hp.port) continue;
      if (hostMatches(r.host!, hp.host, ip)) return true;
    }
    return false;
  }
}

function hostMatches(rule: HostRule, host: string, ip: Uint8Array | null): boolean {
  switch (rule.kind) {
    case "anyHost":
      return true;
    case "name":
      return rule.name === host;
    case "cidr":
      return ip !== null && cidrContains(rule.net, ip);
    case "suffix":
      // An IP literal is never a name under a suffix, even one like `*.0.0.1`.
      return ip === null && host.length > rule.dotSuffix.length &&
        host.toLowerCase().endsWith(rule.dotSuffix);
  }
}

/**
 * Splits each value on commas (as Kong does for repeated `--allow`) and validates every entry.
 * Returns null for an empty list: everything is permitted.
 */
export function parseAllowlist(values: readonly string[]): Allowlist | null {
  const entries = values.flatMap((v) => v.split(",")).map((e) => e.trim());
  if (entries.length === 0) return null;
  return new Allowlist(entries, entries.map(parseRule));
}

function parseRule(entry: string): Rule {
  const bad = (why: string) => new UsageError(`invalid --allow entry "${entry}": ${why}`);
  if (entry === "") throw bad("empty entry");
  if (entry === "*") return { any: true };
  // Go reads `*:*` as the literal host `*`, which allows nothing anyone means; say what does work.
  if (entry === "*:*") throw bad('use "*" to allow every target');
  let hostText: string;
  let port: string;
  let host: HostRule;
  if (entry.startsWith("[")) {
    const end = entry.indexOf("]");
    if (end < 0 || entry[end + 1] !== ":") throw bad("expected [IPv6]:port");
    hostText = entry.slice(1, end);
    port = entry.slice(end + 2);
    // A bracketed address is a one-address network, so `[::1]` also matches `0:0::1`.
    const net = hostText.includes(":")
      ? parseCidr(hostText.includes("/") ? hostText : `${hostText}/128`)
      : null;
    if (!net) throw bad("brackets must hold an IPv6 address or CIDR");
    host = { kind: "cidr", net };
  } else {
    const i = entry.lastIndexOf(":");
    if (i < 0) throw bad("missing port (use host:port, CIDR:port, CIDR:* or *)");
    hostText = entry.slice(0, i);
    port = entry.slice(i + 1);
    if (hostText === "") throw bad("missing host");
    // A target never holds whitespace, so such an entry could only ever match nothing.
    if (/\s/.test(hostText)) throw bad("the host must not contain whitespace");
    if (hostText.includes("*")) {
      host = wildcardRule(hostText, bad);
    } else if (hostText.includes("/")) {
      const net = parseCidr(hostText);
      if (!net) throw bad(`invalid CIDR "${hostText}"`);
      host = { kind: "cidr", net };
    } else {
      host = { kind: "name", name: hostText };
    }
  }
  const why = port === "*" ? undefined : portProblem(port);
  if (why) throw bad(why);
  return { any: false, host, port };
}

const WILDCARD_USE = 'a wildcard host is "*" (any host) or "*.suffix" (names ending in .suffix)';

/** `*` or `*.suffix` as an entry's host; any other `*` (`a*b`, `*foo`, `a.*`, `*.*.x`) is refused. */
function wildcardRule(hostText: string, bad: (why: string) => UsageError): HostRule {
  if (hostText === "*") return { kind: "anyHost" };
  const suffix = hostText.startsWith("*.") ? hostText.slice(2) : "";
  if (suffix === "" || suffix.includes("*") || suffix.startsWith(".") || suffix.endsWith(".")) {
    throw bad(`"${hostText}": ${WILDCARD_USE}`);
  }
  return { kind: "suffix", dotSuffix: `.${suffix.toLowerCase()}` };
}

/**
 * Why `text` is not a port written canonically (decimal, 1-65535, no leading zero), or undefined.
 * Ports are compared as text, so `080` would never match the target `host:80`.
 */
function portProblem(text: string): string | undefined {
  if (!/^\d+$/.test(text)) return `port must be * or a number 1-65535, got "${text}"`;
  const n = Number(text);
  if (n > 65535) return `port ${text} is above 65535`;
  if (n === 0) return `port ${text} is out of range: ports are 1-65535`;
  if (text !== String(n)) {
    return `port "${text}" has a leading zero: write it as ${n} (ports are compared as text, ` +
      `so "${text}" would never match)`;
  }
  return undefined;
}
