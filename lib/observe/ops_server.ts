/**
 * The operations HTTP endpoint behind `--metrics-addr`: `/metrics` (Prometheus text), `/healthz`
 * (liveness: the process serves HTTP) and `/readyz` (readiness as the command defines it, e.g. the
 * listener's control channel is up). Plain HTTP, loopback or pod-network only; nothing secret here.
 */
import { getLogger, type Logger } from "./log.ts";
import { CONTENT_TYPE } from "./prometheus.ts";

export interface Readiness {
  ready: boolean;
  /** Why not ready; sent as the one-line 503 body. */
  reason?: string;
}

export interface OpsServerOptions {
  /** `host:port`, `:port` (all IPv4 interfaces) or `[v6]:port`; port 0 picks a free one. */
  addr: string;
  /** Anything that renders the exposition text (a `Metrics` or a `Registry`). */
  metrics: { render(): string };
  /** Checked on every `/readyz`; defaults to always ready. */
  readiness?: () => Readiness;
  logger?: Logger;
}

export interface OpsServer {
  /** The bound address as `host:port` (`[v6]:port`), with the real port. */
  readonly addr: string;
  /** Stops listening and waits for in-flight requests. */
  close(): Promise<void>;
}

/** Thrown by `startOpsServer`; `code` follows lib/errors.ts conventions. */
export class OpsServerError extends Error {
  readonly code: "invalid_addr" | "listen_failed";
  constructor(code: OpsServerError["code"], message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "OpsServerError";
    this.code = code;
  }
}

export interface ListenAddr {
  hostname: string;
  port: number;
}

/** Parses a Go-style listen address; null when malformed. An empty host means 0.0.0.0. */
export function parseListenAddr(addr: string): ListenAddr | null {
  const m = /^(?:\[([\w:.%]+)\]|([^\[\]:]*)):(\d{1,5})$/.exec(addr.trim());
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  const hostname = m[1] ?? (m[2] || "0.0.0.0");
  return { hostname, port };
}

export function formatHostPort(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

export function startOpsServer(opts: OpsServerOptions): OpsServer {
  const listen = parseListenAddr(opts.addr);
  if (!listen) throw new OpsServerError("invalid_addr", `invalid metrics address "${opts.addr}"`);
  const logger = opts.logger ?? getLogger();
  const readiness = opts.readiness ?? (() => ({ ready: true }));

  const handler = (req: Request): Response => {
    const path = new URL(req.url).pathname;
    const route = ROUTES.get(path);
    if (!route) return text(404, "404 page not found\n");
    if (req.method !== "GET" && req.method !== "HEAD") {
      return text(405, "method not allowed\n", { allow: "GET, HEAD" });
    }
    switch (route) {
      case "metrics":
        return new Response(opts.metrics.render(), {
          headers: { "content-type": CONTENT_TYPE },
        });
      case "healthz":
        return text(200, "ok\n");
      case "readyz": {
        const r = readiness();
        if (r.ready) return text(200, "ready\n");
        const reason = (r.reason ?? "not ready").replace(/[\r\n]+/g, " ");
        return text(503, `not ready: ${reason}\n`);
      }
    }
  };

  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: listen.hostname,
      port: listen.port,
      // Deno.serve prints "Listening on …" to stdout by default; stdout carries tunnel data.
      onListen: () => {},
      onError: (err) => {
        logger.error("metrics server failed", { error: err });
        return text(500, "internal error\n");
      },
    }, handler);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new OpsServerError(
      "listen_failed",
      `metrics server listen ${opts.addr}: ${message}`,
      { cause: err },
    );
  }
  const bound = formatHostPort(server.addr.hostname, server.addr.port);
  logger.info("metrics server listening", { addr: bound });
  let closing: Promise<void> | undefined;
  return {
    addr: bound,
    close: () => closing ??= server.shutdown(),
  };
}

const ROUTES = new Map<string, "metrics" | "healthz" | "readyz">([
  ["/metrics", "metrics"],
  ["/healthz", "healthz"],
  ["/readyz", "readyz"],
]);

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...headers },
  });
}
