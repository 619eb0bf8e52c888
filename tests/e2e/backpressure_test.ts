/**
 * A target that reads 64 KiB/s while a client pushes tens of MiB: the tunnel must push back (the
 * client's writes stall) instead of buffering, and every process stays under 100 MiB RSS.
 */
import assert from "node:assert/strict";
import {
  type MemSample,
  type Proc,
  startListener,
  startPortForward,
  startRelayServer,
} from "../helpers/proc.ts";
import { startSlowReader } from "../helpers/servers.ts";

const MiB = 1024 * 1024;
/** Kernel socket buffers on the four loopback hops absorb 16–27 MiB here before anything blocks. */
const PUSH_LIMIT = 64 * MiB;
const RSS_BUDGET = 100 * MiB;
/** No write progress for this long means the sender pushes back. */
const STALL_MS = 2_000;

Deno.test("backpressure: a slow target stalls the client and bounds every process's memory", async () => {
  await using slow = startSlowReader(64 * 1024);
  await using relay = await startRelayServer();
  await using listener = await startListener(relay);
  await using pf = await startPortForward(relay, slow.addr);
  const procs: Proc[] = [relay.proc, listener, pf.proc];
  const peak = new Map<Proc, MemSample>();
  const sample = () => {
    for (const p of procs) {
      const m = p.mem();
      if (!m) continue;
      const prev = peak.get(p);
      peak.set(p, { rss: Math.max(prev?.rss ?? 0, m.rss), hwm: Math.max(prev?.hwm ?? 0, m.hwm) });
    }
  };
  const sampler = setInterval(sample, 100);

  const conn = await Deno.connect({ hostname: "127.0.0.1", port: pf.port });
  let pushed = 0;
  let stalled = false;
  let pending: Promise<number> | undefined;
  try {
    const chunk = new Uint8Array(64 * 1024);
    while (pushed < PUSH_LIMIT) {
      const write = conn.write(chunk.subarray(0, Math.min(chunk.length, PUSH_LIMIT - pushed)));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const outcome = await Promise.race([
        write,
        new Promise<"stall">((r) => timer = setTimeout(() => r("stall"), STALL_MS)),
      ]);
      clearTimeout(timer);
      if (outcome === "stall") {
        stalled = true;
        pending = write;
        break;
      }
      pushed += outcome;
    }
    sample();
  } finally {
    clearInterval(sampler);
    conn.close();
    await pending?.catch(() => 0);
  }

  const report = procs.map((p) => {
    const m = peak.get(p);
    return `${p.name}: rss ${((m?.rss ?? 0) / MiB).toFixed(1)} MiB, hwm ${
      ((m?.hwm ?? 0) / MiB).toFixed(1)
    } MiB`;
  }).join("; ");
  assert.ok(stalled, `all ${pushed / MiB} MiB were accepted without pushback (${report})`);
  assert.ok(pushed < PUSH_LIMIT, `pushed ${pushed}`);
  assert.ok(slow.received > 0, "the target received nothing");
  for (const p of procs) {
    const m = peak.get(p);
    assert.ok(m, `no memory sample for ${p.name}`);
    assert.ok(m.hwm < RSS_BUDGET, `${p.name} over budget: ${report}`);
  }
  console.log(`pushed ${(pushed / MiB).toFixed(1)} MiB before the stall; ${report}`);
});
