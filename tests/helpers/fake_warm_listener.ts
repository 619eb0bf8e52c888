/**
 * A scriptable listener on a local relay-server, built from lib/relay's control channel and lib/ws:
 * it answers v1 envelopes and echoes. Go-like (no hello, no features) or Deno-like (hello, warm,
 * early data), and it can cut warm legs at the envelope or after delivering their early data.
 */
import assert from "node:assert/strict";
import { deadline } from "../../lib/async.ts";
import { getLogger } from "../../lib/observe/log.ts";
import { runControlChannel } from "../../lib/relay/control_channel.ts";
import { encodeHello, isWarmLeg } from "../../lib/tunnel/warm.ts";
import { connectWebSocket } from "../../lib/ws/client.ts";
import type { WebSocketConn } from "../../lib/ws/conn.ts";
import { writeAll } from "./servers.ts";
import type { LocalRelay } from "./tunnel_stack.ts";

const WAIT_MS = 20_000;

export interface FakeWarmListenerOptions {
  /** Say hello on warm legs (a Deno listener does; a Go one does not). Default true. */
  hello?: boolean;
  /** The hello's and the answer's `features` (Go: none, and then the answer names none). */
  features: string[];
  /** Go's --connect-timeout, shortened: a leg with no envelope by then is closed. */
  envelopeDeadlineMs: number;
  /** Warm envelopes after which the leg is cut at once, unanswered: nothing early read. */
  cutAtEnvelope?: number;
  /** Warm envelopes whose first early frame is delivered to the target, then the leg is cut. */
  cutAfterEarly?: number;
}

export interface FakeLeg {
  warm: boolean;
  ws: WebSocketConn;
  /** What became of it before any envelope: "sender" (closed by the sender) or "deadline". */
  unused?: { by: "sender" | "deadline"; code?: number };
  envelope?: { target: string; [key: string]: unknown };
  /** Cut by the script (at the envelope or after its early data). */
  cut?: boolean;
  /** The early frame it delivered before the cut. */
  early?: Uint8Array;
}

export interface FakeWarmListener {
  legs: FakeLeg[];
  /** Legs that got an envelope (a client used them). */
  used(): FakeLeg[];
  /** Resolves once `pred(legs)` holds. */
  until(pred: (l: FakeLeg[]) => boolean, what: string): Promise<void>;
  stop(): Promise<void>;
}

/** Starts the fake on `local`; resolves once its control channel is up. */
export async function fakeWarmListener(
  local: LocalRelay,
  opts: FakeWarmListenerOptions,
): Promise<FakeWarmListener> {
  const legs: FakeLeg[] = [];
  const sessions: Promise<void>[] = [];
  const hello = opts.hello ?? true;
  let cutAtEnvelope = opts.cutAtEnvelope ?? 0;
  let cutAfterEarly = opts.cutAfterEarly ?? 0;
  const changed = new Set<() => void>();
  const notify = () => {
    for (const w of [...changed]) w();
  };
  const serve = async (address: string, warm: boolean) => {
    const ws = await connectWebSocket(address);
    const leg: FakeLeg = { warm, ws };
    legs.push(leg);
    notify();
    if (warm && hello) {
      await ws.send(encodeHello({ listener_id: "FAKE", features: opts.features }));
    }
    const first = await deadline(ws.receive(), opts.envelopeDeadlineMs)
      .catch(() => "deadline" as const);
    if (first === "deadline" || first === null || first.type !== "text") {
      leg.unused = first === "deadline"
        ? { by: "deadline" }
        : { by: "sender", code: ws.closeInfo?.code };
      await ws.close(1000, "no envelope").catch(() => {});
      notify();
      return;
    }
    // Marked before anyone hears of the envelope: waiters tell a cut leg from an answered one.
    const cutNow = warm && cutAtEnvelope > 0;
    const cutLater = warm && !cutNow && cutAfterEarly > 0;
    if (cutNow) cutAtEnvelope--;
    if (cutLater) cutAfterEarly--;
    leg.cut = cutNow || cutLater;
    leg.envelope = JSON.parse(first.data);
    notify();
    if (cutNow) {
      ws.closeNow();
      return;
    }
    if (cutLater) {
      const early = await deadline(ws.receive(), WAIT_MS);
      assert.equal(early?.type, "binary", "early data after the envelope");
      const [hostname, port] = leg.envelope!.target.split(":");
      const conn = await Deno.connect({ hostname, port: Number(port) });
      try {
        await writeAll(conn, early.data as Uint8Array);
      } finally {
        conn.close();
      }
      leg.early = early.data as Uint8Array;
      // Delivered, then lost before the answer (as a relay cutting the leg would).
      ws.closeNow();
      notify();
      return;
    }
    const answer: Record<string, unknown> = { version: 1, ok: true, listener_id: "FAKE" };
    if (opts.features.length > 0) answer.features = opts.features;
    await ws.send(JSON.stringify(answer));
    for (let msg = await ws.receive(); msg; msg = await ws.receive()) await ws.send(msg.data);
    await ws.close(1000, "done").catch(() => {});
  };
  const stopControl = new AbortController();
  const up = Promise.withResolvers<void>();
  const control = runControlChannel({
    endpoint: local.endpoint,
    entity: local.relay.entity,
    tokens: local.relay.tokens,
    logger: getLogger({ side: "fake-listener" }),
    signal: stopControl.signal,
    onAccept: (accept) =>
      void sessions.push(serve(accept.address, isWarmLeg(accept.connectHeaders)).catch(() => {})),
    onConnectedChange: (isUp) => isUp && up.resolve(),
  });
  await up.promise;
  return {
    legs,
    used: () => legs.filter((l) => l.envelope),
    until: (pred, what) =>
      deadline(
        new Promise<void>((resolve) => {
          const check = () => {
            if (!pred(legs)) return;
            changed.delete(check);
            resolve();
          };
          changed.add(check);
          check();
        }),
        WAIT_MS,
        { onTimeout: () => new Error(`fake listener: ${what} not reached`) },
      ),
    async stop() {
      stopControl.abort();
      await control;
      for (const l of legs) l.ws.closeNow();
      await Promise.all(sessions);
    },
  };
}
