/**
 * Where relay host names connected recently, so a dial within the TTL skips the resolver (issue 10
 * item 5: every rendezvous dial would otherwise pay a lookup). The address kept is the one a
 * connect by name reached (`remoteAddr`), i.e. the system resolver's choice: `Deno.resolveDns`
 * queries DNS servers directly and ignores /etc/hosts and nsswitch, where private endpoints are
 * often pinned. Only the TCP peer changes: TLS still sends and verifies the name (SNI, certificate).
 */

/** How long an address is reused: short, so a relay that moves is followed within seconds. */
export const DNS_CACHE_TTL_MS = 30_000;
const DEFAULT_MAX_ENTRIES = 256;

export interface DnsCacheOptions {
  ttlMs?: number;
  /** Names kept at most; the least recently stored goes first. */
  maxEntries?: number;
  now?: () => number;
}

/** An IP literal needs no lookup (IPv6 has a colon; IPv4 is a dotted quad). */
const isIpLiteral = (host: string) => host.includes(":") || /^\d+\.\d+\.\d+\.\d+$/.test(host);

/** Positive answers only: a name that failed to connect is simply not in the cache. */
export class DnsCache {
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, { address: string; expires: number }>();

  constructor(opts: DnsCacheOptions = {}) {
    this.#ttlMs = opts.ttlMs ?? DNS_CACHE_TTL_MS;
    this.#maxEntries = opts.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.#now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The fresh address of `hostname`, if any. */
  get(hostname: string): string | undefined {
    const key = hostname.toLowerCase();
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (this.#now() < entry.expires) return entry.address;
    this.#entries.delete(key);
    return undefined;
  }

  set(hostname: string, address: string): void {
    if (isIpLiteral(hostname)) return;
    const key = hostname.toLowerCase();
    this.#entries.delete(key);
    this.#entries.set(key, { address, expires: this.#now() + this.#ttlMs });
    for (const oldest of this.#entries.keys()) {
      if (this.#entries.size <= this.#maxEntries) break;
      this.#entries.delete(oldest);
    }
  }

  delete(hostname: string): void {
    this.#entries.delete(hostname.toLowerCase());
  }
}

/** The process's cache for relay and proxy host names. */
export const sharedDnsCache: DnsCache = new DnsCache();

export interface CachedConnectOptions {
  hostname: string;
  port: number;
  signal?: AbortSignal;
}

/**
 * TCP to `hostname:port`: to its cached address when fresh, else by name, remembering where that
 * went. A cached address that fails is forgotten and the name tried again, so the cache never
 * fails a dial that connecting by name would not.
 */
export async function connectCached(
  cache: DnsCache | null,
  opts: CachedConnectOptions,
): Promise<Deno.TcpConn> {
  const cached = cache?.get(opts.hostname);
  if (cache && cached !== undefined) {
    try {
      return await Deno.connect({ ...opts, hostname: cached });
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      cache.delete(opts.hostname);
    }
  }
  const conn = await Deno.connect(opts);
  cache?.set(opts.hostname, conn.remoteAddr.hostname);
  return conn;
}
