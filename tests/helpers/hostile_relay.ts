/**
 * A relay that lies (issue 8 §2): a control endpoint on 127.0.0.1 the test scripts frame by frame,
 * rendezvous upgrades it records, canned hostile control frames, and canary ports that must see no
 * connection. Plain ws:// or, with `tls`, wss://.
 */
import type { RelayEndpoint } from "../../lib/relay/endpoint.ts";
import type { WebSocketConn } from "../../lib/ws/conn.ts";
import { type HttpServer, serveHttp } from "../../lib/ws/server.ts";
import { type Deferred, deferred, within } from "./fake_relay.ts";
import { closeQuietly } from "../../lib/async.ts";

/** A queue of values that arrive over time, taken in order with a deadline. */
class Inbox<T> {
  #items: T[] = [];
  #waiting: Deferred<T>[] = [];
  push(v: T): void {
    const w = this.#waiting.shift();
    if (w) w.resolve(v);
    else this.#items.push(v);
  }
  next(what: string, timeoutMs = 5000): Promise<T> {
    const v = this.#items.shift();
    if (v !== undefined) return Promise.resolve(v);
    const d = deferred<T>();
    this.#waiting.push(d);
    return within(d.promise, timeoutMs, what);
  }
  get size(): number {
    return this.#items.length;
  }
}

/** One control channel as the relay sees it: send frames, read the listener's TEXT replies. */
export interface ControlPeer {
  readonly ws: WebSocketConn;
  /** The listener's next TEXT message (renewals and responses). */
  nextText(timeoutMs?: number): Promise<string>;
  /** Resolves once the listener closed the channel and the relay answered the Close. */
  readonly ended: Promise<void>;
}

export interface Rendezvous {
  readonly ws: WebSocketConn;
  /** `sb-hc-action` of the upgrade: `accept` or `request`. */
  readonly action: string | null;
}

export interface HostileRelay extends AsyncDisposable {
  readonly endpoint: RelayEndpoint;
  readonly port: number;
  /** A rendezvous address on the relay itself, which a listener may dial. */
  address(action: "accept" | "request", id: string): string;
  nextControl(timeoutMs?: number): Promise<ControlPeer>;
  nextRendezvous(timeoutMs?: number): Promise<Rendezvous>;
  /** Rendezvous upgrades not yet taken with nextRendezvous. */
  readonly pendingRendezvous: number;
  close(): Promise<void>;
}

function controlPeer(ws: WebSocketConn): ControlPeer {
  const texts = new Inbox<string>();
  const ended = (async () => {
    for (
      let m = await ws.receive().catch(() => null);
      m;
      m = await ws.receive().catch(() => null)
    ) {
      if (m.type === "text") texts.push(m.data);
    }
    await ws.close().catch(() => {});
  })();
  return { ws, nextText: (t) => texts.next("a TEXT message from the listener", t), ended };
}

export function startHostileRelay(
  opts: { tls?: { cert: string; key: string } } = {},
): HostileRelay {
  const listener = opts.tls
    ? Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: opts.tls.cert, key: opts.tls.key })
    : Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const scheme = opts.tls ? "wss" : "ws";
  const port = (listener.addr as Deno.NetAddr).port;
  const controls = new Inbox<ControlPeer>();
  const rendezvous = new Inbox<Rendezvous>();
  const server: HttpServer = serveHttp({
    listener,
    secure: opts.tls !== undefined,
    handler: async (req) => {
      const action = req.url.searchParams.get("sb-hc-action");
      const ws = await req.upgrade();
      if (action === "listen") controls.push(controlPeer(ws));
      else rendezvous.push({ ws, action });
    },
  });
  return {
    endpoint: { scheme, host: `127.0.0.1:${port}` },
    port,
    address: (action, id) =>
      `${scheme}://127.0.0.1:${port}/$hc/hc?sb-hc-action=${action}&sb-hc-id=${id}`,
    nextControl: (t) => controls.next("a control channel", t),
    nextRendezvous: (t) => rendezvous.next("a rendezvous upgrade", t),
    get pendingRendezvous() {
      return rendezvous.size;
    },
    close: () => server.close(),
    [Symbol.asyncDispose]: () => server.close(),
  };
}

/** Loopback ports that count every connection they get; a test asserts they got none. */
export interface Canary extends AsyncDisposable {
  readonly port: number;
  /** Connections seen so far, on any of the canary's addresses. */
  readonly hits: number;
  close(): Promise<void>;
}

/** Listens on `hostnames` (first one picks the port; the others take it when they can). */
export function startCanary(hostnames: readonly string[] = ["127.0.0.1"]): Canary {
  const first = Deno.listen({ hostname: hostnames[0], port: 0 });
  const port = (first.addr as Deno.NetAddr).port;
  const listeners = [first];
  for (const hostname of hostnames.slice(1)) {
    try {
      listeners.push(Deno.listen({ hostname, port }));
    } catch {
      // Taken or unavailable there: the canary watches the addresses it got.
    }
  }
  let hits = 0;
  const loops = listeners.map(async (l) => {
    try {
      for await (const conn of l) {
        hits++;
        conn.close();
      }
    } catch {
      // closed
    }
  });
  const close = async () => {
    for (const l of listeners) {
      closeQuietly(l);
    }
    await Promise.all(loops);
  };
  return {
    port,
    get hits() {
      return hits;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** `{"accept":{…}}` with `address`, as a relay would write it. */
export function acceptJson(address: string, id = "hostile_G1"): string {
  return JSON.stringify({
    accept: {
      address,
      id,
      connectHeaders: { Host: "ns" },
      remoteEndpoint: { address: "", port: 0 },
    },
  });
}

/** `{"request":{…}}` for an HTTP POST; `body` undefined leaves the member out (a large request). */
export function requestJson(address: string, id: string, body?: boolean): string {
  return JSON.stringify({
    request: {
      address,
      id,
      requestTarget: "/hc/x",
      method: "POST",
      remoteEndpoint: { address: "203.0.113.7", port: 1 },
      requestHeaders: { "Content-Type": "application/json" },
      ...(body === undefined ? {} : { body }),
    },
  });
}
