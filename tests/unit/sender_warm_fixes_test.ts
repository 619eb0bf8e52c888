/**
 * Regressions in the warm legs: a leg that dies right after its hello backs warming off instead of
 * being redialled at once, and early data holds exactly the bytes it read, not a read buffer each.
 */
import assert from "node:assert/strict";
import type { Attrs, Logger } from "../../lib/observe/log.ts";
import { ClientInput } from "../../lib/sender/early_data.ts";
import type { SenderRelayConfig } from "../../lib/sender/open_tunnel.ts";
import { WarmLeg } from "../../lib/sender/warm_leg.ts";
import { WarmPool } from "../../lib/sender/warm_pool.ts";
import { fakeSocketPair } from "../helpers/fake_socket.ts";

const HELLO = { listener_id: "L", features: ["half-close", "warm", "early-data"] };

/** A logger that calls `onMessage` for every line (the pool logs at DEBUG only). */
function listeningLogger(onMessage: (msg: string) => void): Logger {
  const line = (msg: string, _attrs?: Attrs) => onMessage(msg);
  const log: Logger = { debug: line, info: line, warn: line, error: line, with: () => log };
  return log;
}

Deno.test("warm pool: a leg that dies right after its hello backs off, no redial loop", async () => {
  let dials = 0;
  const backedOff = Promise.withResolvers<"backoff">();
  const looping = Promise.withResolvers<"loop">();
  const pool = new WarmPool({
    relay: {} as SenderRelayConfig,
    min: 2,
    max: 16,
    logger: listeningLogger((msg) => {
      if (msg === "warm legs backing off") backedOff.resolve("backoff");
    }),
    timings: {
      pingIntervalMs: 60_000,
      pingTimeoutMs: 1_000,
      recycleAgeMs: 60_000,
      backoffBaseMs: 60_000,
      backoffMaxMs: 60_000,
    },
    dial: () => {
      if (++dials >= 10) looping.resolve("loop");
      const [ours, theirs] = fakeSocketPair();
      // The listener drops the leg at once after its hello.
      queueMicrotask(() => theirs.closeNow());
      return Promise.resolve(new WarmLeg(`L${dials}`, ours, HELLO, HELLO.features, getNop(), 1));
    },
  });
  try {
    pool.noteFeatures(["warm"]);
    assert.equal(await Promise.race([backedOff.promise, looping.promise]), "backoff");
    assert.ok(dials <= 2, `${dials} dials`);
    assert.equal(pool.ready, 0);
  } finally {
    await pool.close();
  }
});

function getNop(): Logger {
  return listeningLogger(() => {});
}

Deno.test("early data: 1000 one-byte reads hold ~1000 bytes, not 1000 read buffers", async () => {
  let reads = 0;
  const done = Promise.withResolvers<void>();
  const conn = {
    read: (p: Uint8Array): Promise<number | null> => {
      if (reads++ >= 1000) {
        done.resolve();
        return new Promise<null>(() => {});
      }
      p[0] = reads & 0xff;
      return Promise.resolve(1);
    },
    write: (p: Uint8Array) => Promise.resolve(p.length),
    closeWrite: () => Promise.resolve(),
    close: () => {},
  };
  const input = new ClientInput(conn);
  const pump = input.pump();
  const [ours, theirs] = fakeSocketPair(4096);
  const drained = (async () => {
    while (await theirs.receive() !== null) continue;
  })().catch(() => {}); // closeNow at the end cuts it
  pump.start(ours);
  await done.promise;
  // The 1001st read is pending: every earlier one is held by then.
  while (input.heldBytes < 1000) await Promise.resolve();
  const retained = input.held.reduce((n, b) => n + b.buffer.byteLength, 0);
  assert.equal(input.heldBytes, 1000);
  assert.ok(retained <= 2 * input.heldBytes, `retained ${retained} bytes for 1000 held`);
  assert.deepEqual([...input.held.slice(0, 3)].map((b) => b[0]), [1, 2, 3]);
  await pump.settle(false);
  ours.closeNow();
  theirs.closeNow();
  await drained;
});
