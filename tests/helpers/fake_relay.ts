/**
 * Test kit for lib/relay: a scriptable fake relay on loopback (each test decides what every
 * request gets) and event-driven waits with deadlines (no sleeps).
 */
import { type HttpServer, type IncomingRequest, serveHttp } from "../../lib/ws/server.ts";
import type { RelayEndpoint } from "../../lib/relay/endpoint.ts";

/** Resolves when `check()` holds; re-checked whenever `subscribe`'s notifier fires. */
class Waiters {
  #waiters = new Set<() => void>();
  notify(): void {
    for (const w of [...this.#waiters]) w();
  }
  until<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const test = () => {
        const v = check();
        if (v === undefined) return;
        clearTimeout(timer);
        this.#waiters.delete(test);
        resolve(v);
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(test);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.#waiters.add(test);
      test();
    });
  }
}

export interface SeenRequest {
  readonly req: IncomingRequest;
  readonly action: string | null;
  readonly token: string | null;
  readonly path: string;
  readonly at: number;
}

export interface FakeRelay extends AsyncDisposable {
  readonly endpoint: RelayEndpoint;
  readonly port: number;
  readonly requests: SeenRequest[];
  /** Resolves once at least `n` requests have arrived. */
  waitForRequests(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export type RelayHandler = (
  req: IncomingRequest,
  seen: SeenRequest,
  index: number,
) => Promise<void>;

/** A ws:// relay on 127.0.0.1 (`port` 0 = ephemeral) that hands every request to `handler`. */
export function startFakeRelay(handler: RelayHandler, port = 0): FakeRelay {
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  const requests: SeenRequest[] = [];
  const waiters = new Waiters();
  const server: HttpServer = serveHttp({
    listener,
    handler: (req) => {
      const seen: SeenRequest = {
        req,
        action: req.url.searchParams.get("sb-hc-action"),
        token: req.url.searchParams.get("sb-hc-token"),
        path: req.target.split("?")[0],
        at: performance.now(),
      };
      const index = requests.push(seen) - 1;
      waiters.notify();
      return handler(req, seen, index);
    },
  });
  const addr = listener.addr as Deno.NetAddr;
  const relay: FakeRelay = {
    endpoint: { scheme: "ws", host: `127.0.0.1:${addr.port}` },
    port: addr.port,
    requests,
    waitForRequests: (n, timeoutMs = 5000) =>
      waiters.until(() => requests.length >= n || undefined, timeoutMs, `${n} relay requests`)
        .then(() => {}),
    close: () => server.close(),
    [Symbol.asyncDispose]: () => server.close(),
  };
  return relay;
}

export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** `withDeadline`, under the name the relay tests use. */
export { withDeadline as within } from "./proc.ts";
