/**
 * Cut tunnels are told apart from complete ones (issue 8 item 4): a local failure closes with 1011,
 * never with the eof of a finished stream, and clean ends keep FIN and every byte. With a peer that
 * cannot half-close, a local shutdown(SHUT_WR) still gets the reply (item 5).
 */
import assert from "node:assert/strict";
import net from "node:net";
import { getLogger } from "../../lib/observe/log.ts";
import { type AcceptMessage, runControlChannel } from "../../lib/relay/control_channel.ts";
import { runArcPortForward } from "../../lib/arc/port_forward.ts";
import { EOF_MESSAGE } from "../../lib/tunnel/bridge.ts";
import { FEATURE_HALF_CLOSE } from "../../lib/tunnel/envelope.ts";
import { connectWebSocket } from "../../lib/ws/client.ts";
import type { MessageSocket } from "../../lib/ws/types.ts";
import { startArcStack } from "../helpers/arc_stack.ts";
import { readExactly, writeAll } from "../helpers/servers.ts";
import { endOf, readToEnd } from "../helpers/tcp_end.ts";
import {
  dec,
  enc,
  type LocalRelay,
  startLocalRelay,
  startPortForward,
  startStack,
  startTarget,
} from "../helpers/tunnel_stack.ts";

const MiB = 1024 * 1024;

/**
 * A listener of our own making on the relay: answers each envelope ok (offering `features`), then
 * hands the rendezvous socket to `serve`.
 */
async function startRawListener(
  local: LocalRelay,
  features: string[],
  serve: (ws: MessageSocket) => Promise<void>,
): Promise<AsyncDisposable> {
  const stop = new AbortController();
  const up = Promise.withResolvers<void>();
  const tasks = new Set<Promise<void>>();
  const accept = async (msg: AcceptMessage) => {
    const ws = await connectWebSocket(msg.address, { maxMessageSize: 32768 });
    await ws.receive();
    await ws.send(JSON.stringify({ version: 1, ok: true, listener_id: "RAW", features }));
    try {
      await serve(ws);
    } finally {
      ws.closeNow();
      await ws.closed;
    }
  };
  const control = runControlChannel({
    endpoint: local.endpoint,
    entity: local.relay.entity,
    tokens: local.relay.tokens,
    logger: getLogger({ side: "raw-listener" }),
    signal: stop.signal,
    onAccept: (msg) => {
      const t = accept(msg).catch(() => {});
      tasks.add(t);
      t.finally(() => tasks.delete(t));
    },
    onConnectedChange: (isUp) => isUp && up.resolve(),
  });
  await up.promise;
  return {
    async [Symbol.asyncDispose]() {
      stop.abort();
      await control;
      await Promise.all([...tasks]);
    },
  };
}

/** Sends `total` bytes of 32 KiB messages. */
async function sendData(ws: MessageSocket, total: number) {
  const chunk = new Uint8Array(32768).fill(7);
  for (let sent = 0; sent < total; sent += chunk.length) await ws.send(chunk);
}

Deno.test("cut: a clean end after the listener's eof keeps FIN and every byte", async () => {
  const local = await startLocalRelay();
  try {
    await using _listener = await startRawListener(local, [FEATURE_HALF_CLOSE], async (ws) => {
      await sendData(ws, 4 * MiB);
      await ws.send(EOF_MESSAGE);
      // Our side ends after the sender's eof (the client half-closes below).
      while (await ws.receive() !== null) { /* until the sender's eof and Close */ }
      await ws.close(1000, "done");
    });
    await using fwd = await startPortForward(local.relay, "127.0.0.1:9");
    const client = await fwd.connect();
    await client.closeWrite();
    const got = await endOf(client);
    client.close();
    assert.deepEqual(got, { bytes: 4 * MiB, end: "fin" });
  } finally {
    await local.server.close();
  }
});

Deno.test("cut: a client reset mid-upload reaches the listener as a cut, not as an end", async () => {
  const started = Promise.withResolvers<void>();
  await using target = startTarget(async (conn) => {
    await conn.read(new Uint8Array(1));
    started.resolve();
    await endOf(conn);
  });
  await using stack = await startStack();
  await using fwd = await startPortForward(stack.relay, target.addr);
  const client = net.connect({ host: "127.0.0.1", port: fwd.port });
  await new Promise((resolve) => client.once("connect", resolve));
  client.write(new Uint8Array(256 * 1024));
  await started.promise;
  client.resetAndDestroy();
  // The sender closes with 1011, never with the eof a finished upload sends.
  const sender = await stack.logs.waitFor(/msg="bridge ended" side=sender/);
  assert.match(sender, /cause=local_close .*tcp_to_ws_err=/);
  const listener = await stack.logs.waitFor(/msg="bridge ended" side=listener/);
  assert.match(
    listener,
    /error="tunnel closed by peer before end of data \(close 1011: tunnel cut\)"/,
  );
});

Deno.test("cut: a finished upload keeps FIN at the target", async () => {
  const seen = Promise.withResolvers<{ bytes: number; end: string }>();
  await using target = startTarget(async (conn) => {
    seen.resolve(await endOf(conn));
  });
  await using stack = await startStack();
  await using fwd = await startPortForward(stack.relay, target.addr);
  const client = await fwd.connect();
  await writeAll(client, new Uint8Array(MiB));
  await client.closeWrite();
  assert.deepEqual(await seen.promise, { bytes: MiB, end: "fin" });
  assert.deepEqual(await readToEnd(client), { data: new Uint8Array(0), end: "fin" });
  client.close();
});

/** A Go listener: no features; echoes what arrives, ends with 1000 after `closeAfter` bytes. */
function goEcho(closeAfter?: number) {
  return async (ws: MessageSocket) => {
    let echoed = 0;
    for (;;) {
      const msg = await ws.receive();
      if (msg === null) return;
      await ws.send(msg.data);
      echoed += msg.data.length;
      if (closeAfter !== undefined && echoed >= closeAfter) {
        await ws.close(1000, "done");
        return;
      }
    }
  };
}

Deno.test("linger: printf ping | socat through a Go-style listener gets the reply and FIN", async () => {
  const local = await startLocalRelay();
  try {
    await using _listener = await startRawListener(local, [], goEcho(5));
    // A long linger: the listener's Close, not the deadline, ends this one.
    await using fwd = await startPortForward(local.relay, "127.0.0.1:9", {
      halfCloseLingerMs: 30_000,
    });
    const client = await fwd.connect();
    const t0 = performance.now();
    await writeAll(client, enc.encode("ping\n"));
    await client.closeWrite();
    const got = await readToEnd(client);
    client.close();
    assert.equal(dec.decode(got.data), "ping\n");
    assert.equal(got.end, "fin");
    assert.ok(performance.now() - t0 < 10_000, "ended by the listener's Close");
  } finally {
    await local.server.close();
  }
});

Deno.test("linger: a Go-style listener that never closes is given the linger, then FIN", async () => {
  const local = await startLocalRelay();
  try {
    await using _listener = await startRawListener(local, [], goEcho());
    await using fwd = await startPortForward(local.relay, "127.0.0.1:9", {
      halfCloseLingerMs: 300,
    });
    const client = await fwd.connect();
    await writeAll(client, enc.encode("ping\n"));
    await client.closeWrite();
    const got = await readToEnd(client);
    client.close();
    assert.equal(dec.decode(got.data), "ping\n");
    assert.equal(got.end, "fin");
  } finally {
    await local.server.close();
  }
});

Deno.test("linger: printf ping | socat through arc port-forward gets the reply", async () => {
  // The machine's service answers once the request is complete (a newline) and then waits.
  await using target = startTarget(async (conn) => {
    const line = await readExactly(conn, 5);
    await writeAll(conn, enc.encode(`pong:${dec.decode(line)}`));
    await endOf(conn);
  });
  await using stack = await startArcStack({
    resourceId:
      "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.HybridCompute/machines/vm1",
    hybridConnectionName: "microsoft.hybridcompute/machines/0f0e0d0c-0000-4000-8000-000000000001",
    keyName: "arc-agent",
    arm: { serviceConfigs: { SSH: target.port } },
  });
  const stop = new AbortController();
  const bound = Promise.withResolvers<Deno.NetAddr>();
  const running = runArcPortForward({
    ...stack.session(target.port),
    halfCloseLingerMs: 300,
    bind: { hostname: "127.0.0.1", port: 0 },
    keepAlive: false,
    signal: stop.signal,
    logger: getLogger({ side: "arc" }),
    onListening: (addr) => bound.resolve(addr),
  });
  try {
    const client = await Deno.connect({ hostname: "127.0.0.1", port: (await bound.promise).port });
    await writeAll(client, enc.encode("ping\n"));
    await client.closeWrite();
    const got = await readToEnd(client);
    client.close();
    assert.equal(dec.decode(got.data), "pong:ping\n");
    assert.equal(got.end, "fin");
  } finally {
    stop.abort();
    await running;
  }
});
