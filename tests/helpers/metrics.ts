/**
 * Reading what an ops server serves (`/metrics`, `/healthz`, `/readyz`), linting the exposition
 * with `promtool check metrics`, and waiting on tunnel observer events instead of sleeping.
 */
import type { TunnelObserver } from "../../lib/tunnel/observer.ts";

export interface Scrape {
  status: number;
  body: string;
  contentType: string | null;
}

/** GET `http://<addr><path>`; the body is always consumed so no resource leaks. */
export async function scrape(addr: string, path: string): Promise<Scrape> {
  const res = await fetch(`http://${addr}${path}`);
  return {
    status: res.status,
    body: await res.text(),
    contentType: res.headers.get("content-type"),
  };
}

/** The value of one exact series (`name{labels}` as rendered, labels sorted), or undefined. */
export function sample(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith(series + " ")) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

/** Every sample line of metric family `name` (including `_bucket`/`_sum`/`_count` lines). */
export function samples(text: string, name: string): string[] {
  return text.split("\n").filter((l) => l.startsWith(name) && !l.startsWith("#"));
}

let promtoolPath: string | null | undefined;

/** The promtool on PATH, or null. */
export function findPromtool(): string | null {
  if (promtoolPath !== undefined) return promtoolPath;
  promtoolPath = null;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    try {
      if (Deno.statSync(`${dir}/promtool`).isFile) {
        promtoolPath = `${dir}/promtool`;
        break;
      }
    } catch {
      // not in this directory
    }
  }
  return promtoolPath;
}

/**
 * Lints an exposition with `promtool check metrics` (Debian package `prometheus`). Without promtool
 * the check is skipped with a note on stderr; with it, any finding fails the test.
 */
export async function assertPromtoolClean(text: string, what: string): Promise<void> {
  const promtool = findPromtool();
  if (!promtool) {
    console.error(`promtool not found on PATH (apt-get install prometheus): ${what} not linted`);
    return;
  }
  const child = new Deno.Command(promtool, {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const out = await child.output();
  const dec = new TextDecoder();
  const report = (dec.decode(out.stdout) + dec.decode(out.stderr)).trim();
  if (out.code !== 0 || report !== "") {
    throw new Error(`promtool check metrics (${what}) exit ${out.code}:\n${report}\n---\n${text}`);
  }
}

type Hook = keyof Required<TunnelObserver>;

/**
 * A TunnelObserver that counts each hook call so a test can wait for "3 bridges ended" (with a
 * deadline) before reading the metrics.
 */
export class ObserverEvents {
  readonly #counts = new Map<Hook, number>();
  readonly #waiters = new Set<() => void>();

  readonly observer: TunnelObserver = {
    connectionStarted: () => this.#hit("connectionStarted"),
    connectionEnded: () => this.#hit("connectionEnded"),
    connectionError: () => this.#hit("connectionError"),
    dialDuration: () => this.#hit("dialDuration"),
    relayDialEnded: () => this.#hit("relayDialEnded"),
  };

  #hit(hook: Hook): void {
    this.#counts.set(hook, this.count(hook) + 1);
    for (const w of [...this.#waiters]) w();
  }

  count(hook: Hook): number {
    return this.#counts.get(hook) ?? 0;
  }

  /** Resolves once `hook` was called at least `n` times; rejects after `deadlineMs`. */
  waitFor(hook: Hook, n: number, deadlineMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.count(hook) < n) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`${hook}: ${this.count(hook)} of ${n} calls within ${deadlineMs} ms`));
      }, deadlineMs);
      this.#waiters.add(check);
      check();
    });
  }
}
