import assert from "node:assert/strict";
import {
  bridge,
  type BridgeOptions,
  type ByteStream,
  EOF_MESSAGE,
  READ_BUFFER_INITIAL,
  READ_BUFFER_MAX,
} from "../../lib/tunnel/bridge.ts";
import {
  bridgeLogAttrs,
  type BridgeResult,
  causeFromAbort,
} from "../../lib/tunnel/bridge_result.ts";
import { AztunnelError } from "../../lib/errors.ts";
import { writeAll } from "../../lib/net/write_all.ts";
import { SHRINK_AFTER_READS } from "../../lib/net/read_sizer.ts";
import { type FakeSocket, fakeSocketPair } from "../helpers/fake_socket.ts";
import { pattern } from "../helpers/bytes.ts";
import { readAll, tcpPair } from "../helpers/servers.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

async function readN(c: Deno.Conn, n: number): Promise<string> {
  const buf = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    const r = await c.read(buf.subarray(off));
    assert.notEqual(r, null, "unexpected EOF");
    off += r!;
  }
  return dec.decode(buf);
}

/** A bridge between a real TCP pair (client end returned) and a fake socket (peer end returned). */
async function setup(opts: Partial<BridgeOptions> = {}) {
  const [client, local] = await tcpPair();
  const [ws, peer] = fakeSocketPair();
  const done = bridge(local, ws, { halfClose: false, pingIntervalMs: 0, ...opts });
  return { client, peer, ws, done };
}

/** Answers the bridge's Close and waits for its result. */
async function finishPeer(peer: FakeSocket, done: Promise<BridgeResult>): Promise<BridgeResult> {
  while ((await peer.receive()) !== null) { /* drain */ }
  await peer.close(1000, "");
  return await done;
}

Deno.test("bridge v1: after the local EOF the peer's reply still arrives, its Close ends the tunnel", async () => {
  const { client, peer, done } = await setup({ halfCloseLingerMs: 60_000 });
  await writeAll(client, enc.encode("hello"));
  assert.deepEqual(await peer.receive(), { type: "binary", data: enc.encode("hello") });
  await client.closeWrite();
  // A Go peer cannot be told of the EOF: it answers and closes when it is done.
  await peer.send(enc.encode("world"));
  assert.equal(await readN(client, 5), "world");
  const closing = peer.close(1000, "done");
  assert.equal((await readAll(client)).length, 0);
  await closing;
  const r = await done;
  assert.deepEqual(r, { cause: "local_close", tcpToWs: 5, wsToTcp: 5 });
  client.close();
});

Deno.test("bridge v1: the linger runs out: Close 1000 done and local EOF", async () => {
  const { client, peer, done } = await setup({ halfCloseLingerMs: 50 });
  await client.closeWrite();
  await peer.send(enc.encode("late"));
  assert.equal(await readN(client, 4), "late");
  assert.equal(await peer.receive(), null);
  assert.deepEqual(peer.closeInfo, { code: 1000, reason: "done" });
  await peer.close(1000, "");
  assert.deepEqual(await done, { cause: "local_close", tcpToWs: 0, wsToTcp: 4 });
  assert.equal((await readAll(client)).length, 0);
  client.close();
});

Deno.test("bridge v1: a linger of 0 ends the tunnel at the local EOF, as Go does", async () => {
  const { client, peer, done } = await setup({ halfCloseLingerMs: 0 });
  await client.closeWrite();
  assert.equal(await peer.receive(), null);
  assert.deepEqual(peer.closeInfo, { code: 1000, reason: "done" });
  await peer.close(1000, "");
  assert.deepEqual(await done, { cause: "local_close", tcpToWs: 0, wsToTcp: 0 });
  client.close();
});

Deno.test("bridge: local reads are sent as messages of at most 32768 bytes", async () => {
  const { client, peer, done } = await setup({ halfCloseLingerMs: 0 });
  const data = pattern(200_000);
  const writing = writeAll(client, data).then(() => client.closeWrite());
  const got: Uint8Array[] = [];
  for (;;) {
    const m = await peer.receive();
    if (m === null) break;
    assert.equal(m.type, "binary");
    const d = m.data as Uint8Array;
    assert.ok(d.length > 0 && d.length <= 32768, `message of ${d.length} bytes`);
    got.push(d);
  }
  await writing;
  await peer.close();
  const r = await done;
  const joined = new Uint8Array(got.reduce((s, p) => s + p.length, 0));
  let off = 0;
  for (const p of got) {
    joined.set(p, off);
    off += p.length;
  }
  assert.deepEqual(joined, data);
  assert.equal(r.tcpToWs, 200_000);
  client.close();
});

Deno.test("bridge: a large incoming message and TEXT data (v1) reach the local stream", async () => {
  const { client, peer, done } = await setup();
  const big = pattern(100_000);
  await peer.send(big);
  await peer.send("text as data");
  const closing = peer.close(1000, "bye");
  const got = await readAll(client);
  assert.deepEqual(got.subarray(0, big.length), big);
  assert.equal(dec.decode(got.subarray(big.length)), "text as data");
  await closing;
  const r = await done;
  assert.equal(r.cause, "peer_close");
  assert.equal(r.error, undefined);
  assert.equal(r.wsToTcp, 100_000 + 12);
  client.close();
});

Deno.test("bridge half-close: local FIN becomes eof, the reverse direction keeps flowing", async () => {
  const { client, peer, done } = await setup({ halfClose: true });
  await writeAll(client, enc.encode("request"));
  await client.closeWrite();
  assert.deepEqual(await peer.receive(), { type: "binary", data: enc.encode("request") });
  assert.deepEqual(await peer.receive(), { type: "text", data: EOF_MESSAGE });
  // The tunnel is still up: the response flows after the request side ended.
  await peer.send('{"type":"something-new"}'); // unknown control messages are skipped
  await peer.send(enc.encode("response"));
  await peer.send(EOF_MESSAGE);
  assert.equal(dec.decode(await readAll(client)), "response");
  const r = await finishPeer(peer, done);
  assert.deepEqual(r, { cause: "local_close", tcpToWs: 7, wsToTcp: 8 });
  assert.deepEqual(peer.closeInfo, { code: 1000, reason: "done" });
  client.close();
});

Deno.test("bridge half-close: peer eof first closes our write side, local data still flows", async () => {
  const { client, peer, done } = await setup({ halfClose: true });
  await peer.send(enc.encode("banner"));
  await peer.send(EOF_MESSAGE);
  assert.equal(dec.decode(await readAll(client)), "banner");
  await writeAll(client, enc.encode("late data"));
  assert.deepEqual(await peer.receive(), { type: "binary", data: enc.encode("late data") });
  await client.closeWrite();
  assert.deepEqual(await peer.receive(), { type: "text", data: EOF_MESSAGE });
  const r = await finishPeer(peer, done);
  assert.deepEqual(r, { cause: "peer_close", tcpToWs: 9, wsToTcp: 6 });
  client.close();
});

Deno.test("bridge half-close with endOnPeerEof: the peer's eof ends the tunnel, our eof first", async () => {
  const { client, peer, done } = await setup({ halfClose: true, endOnPeerEof: true });
  await peer.send(enc.encode("bye"));
  await peer.send(EOF_MESSAGE);
  // Our own eof before Close tells the peer nothing was cut off (see the test below).
  assert.deepEqual(await peer.receive(), { type: "text", data: EOF_MESSAGE });
  assert.equal(await peer.receive(), null);
  assert.deepEqual(peer.closeInfo, { code: 1000, reason: "done" });
  const r = await finishPeer(peer, done);
  assert.deepEqual(r, { cause: "peer_close", tcpToWs: 0, wsToTcp: 3 });
  assert.equal(dec.decode(await readAll(client)), "bye");
  client.close();
});

Deno.test("bridge half-close: data after eof is a protocol error", async () => {
  const { client, peer, done } = await setup({ halfClose: true });
  await peer.send(EOF_MESSAGE);
  await peer.send(enc.encode("oops"));
  const r = await finishPeer(peer, done);
  assert.equal(r.cause, "peer_close");
  assert.match(r.wsToTcpErr?.message ?? "", /data received after eof/);
  client.close();
});

Deno.test("bridge v1: peer's normal close ends the tunnel; local sees EOF", async () => {
  const { client, peer, done } = await setup();
  const closing = peer.close(1000, "done");
  assert.equal((await readAll(client)).length, 0);
  await closing;
  const r = await done;
  assert.deepEqual(r, { cause: "peer_close", tcpToWs: 0, wsToTcp: 0 });
  client.close();
});

Deno.test("bridge v1: a non-1000 close is an error with close_code", async () => {
  const { client, peer, done } = await setup();
  const closing = peer.close(1001, "going away");
  await closing;
  const r = await done;
  assert.equal(r.cause, "peer_close");
  assert.equal(r.closeCode, 1001);
  assert.equal(r.wsToTcpErr?.message, "websocket closed with code 1001: going away");
  assert.deepEqual(bridgeLogAttrs(r), {
    cause: "peer_close",
    tcp_to_ws: 0,
    ws_to_tcp: 0,
    error: "websocket closed with code 1001: going away",
    ws_to_tcp_err: "websocket closed with code 1001: going away",
    close_code: 1001,
  });
  client.close();
});

Deno.test("bridge half-close: a Close before the peer's eof is an error, even 1000", async () => {
  for (
    const [code, reason] of [[1001, "peer connection lost"], [1000, "done"], [4000, ""]] as const
  ) {
    const { client, peer, done } = await setup({ halfClose: true });
    await peer.send(enc.encode("partial"));
    await peer.close(code, reason);
    const r = await done;
    const detail = reason ? `${code}: ${reason}` : `${code}`;
    const message = `tunnel closed by peer before end of data (close ${detail})`;
    assert.equal(r.cause, "peer_close");
    assert.equal(r.error?.message, message);
    assert.equal((r.error as AztunnelError).code, "closed_before_eof");
    assert.equal(r.wsToTcpErr, r.error);
    assert.deepEqual(bridgeLogAttrs(r), {
      cause: "peer_close",
      tcp_to_ws: 0,
      ws_to_tcp: 7,
      error: message,
      ws_to_tcp_err: message,
      close_code: code,
    });
    // The local end still gets what arrived before the cut.
    assert.equal(dec.decode(await readAll(client)), "partial");
    client.close();
  }
});

Deno.test("bridge half-close: the peer's 1000 after its eof is clean while we still send", async () => {
  const { client, peer, done } = await setup({ halfClose: true });
  await peer.send(EOF_MESSAGE);
  assert.equal((await readAll(client)).length, 0);
  await peer.close(1000, "done");
  const r = await done;
  assert.deepEqual(r, { cause: "peer_close", tcpToWs: 0, wsToTcp: 0 });
  client.close();
});

Deno.test("bridge: a dropped WebSocket is peer_close with close_code 1006", async () => {
  const { client, peer, done } = await setup();
  peer.closeNow();
  const r = await done;
  assert.equal(r.cause, "peer_close");
  assert.equal(r.closeCode, 1006);
  assert.ok(r.wsToTcpErr);
  assert.equal(r.tcpToWsErr, undefined);
  assert.equal((await readAll(client)).length, 0);
  client.close();
});

Deno.test("bridge: cancellation picks the cause from the abort reason and reports no error", async () => {
  for (
    const [reason, cause] of [
      [new DOMException("shutdown", "AbortError"), "user_cancel"],
      [new AztunnelError("user_cancel", "stopped"), "user_cancel"],
      [new AztunnelError("control_error", "ping failed"), "unknown"],
      [new DOMException("late", "TimeoutError"), "timeout"],
      [new Error("???"), "unknown"],
    ] as const
  ) {
    const ac = new AbortController();
    const { client, peer, done } = await setup({ signal: ac.signal });
    await writeAll(client, enc.encode("x"));
    assert.equal((await peer.receive())?.type, "binary");
    ac.abort(reason);
    const r = await finishPeer(peer, done);
    assert.equal(r.cause, cause);
    assert.equal(r.error, undefined);
    client.close();
  }
});

Deno.test("causeFromAbort maps known codes and DOMException names", () => {
  assert.equal(causeFromAbort(undefined), "unknown");
  assert.equal(causeFromAbort(new DOMException("x", "AbortError")), "user_cancel");
  assert.equal(causeFromAbort({ code: "timeout" }), "timeout");
  assert.equal(causeFromAbort({ code: "control_error" }), "unknown");
});

Deno.test("bridge: pings the data socket on the interval and stops at the end", async () => {
  const { client, peer, ws, done } = await setup({ pingIntervalMs: 5, halfCloseLingerMs: 0 });
  await ws.until(() => ws.pings >= 2);
  await client.closeWrite();
  const r = await finishPeer(peer, done);
  assert.equal(r.cause, "local_close");
  client.close();
});

Deno.test("bridge: the local read buffer doubles on full reads up to 64 KiB and shrinks after small ones", async () => {
  assert.equal(READ_BUFFER_INITIAL, 8 * 1024);
  assert.equal(READ_BUFFER_MAX, 64 * 1024);
  const [ws, peer] = fakeSocketPair();
  // What each read returns: "full" fills the buffer it is given, a number that many bytes.
  const script: ("full" | number)[] = [
    ...Array<"full">(5).fill("full"),
    40_000, // partial, above a quarter: no growth, no streak
    ...Array<number>(SHRINK_AFTER_READS).fill(100),
    5000,
    "full",
  ];
  const offered: number[] = [];
  let next = 0;
  const produced: number[] = [];
  const local: ByteStream = {
    read(p) {
      offered.push(p.length);
      const step = script.shift();
      if (step === undefined) return Promise.resolve(null);
      const n = step === "full" ? p.length : step;
      // A running sequence, so bytes lost, repeated or reordered across buffer swaps all show.
      for (let i = 0; i < n; i++) p[i] = (next + i * 7) & 0xff;
      next = (next + n * 7) & 0xff;
      produced.push(n);
      return Promise.resolve(n);
    },
    write: (p) => Promise.resolve(p.length),
    closeWrite: () => Promise.resolve(),
    close: () => {},
  };
  const done = bridge(local, ws, { halfClose: false, pingIntervalMs: 0, halfCloseLingerMs: 0 });
  const got: Uint8Array[] = [];
  for (let m; (m = await peer.receive()) !== null;) {
    assert.equal(m.type, "binary");
    assert.ok(m.data.length <= 32768);
    got.push(m.data as Uint8Array);
  }
  await peer.close(1000, "");
  const r = await done;
  const K = 1024;
  assert.deepEqual(offered, [
    8 * K,
    16 * K,
    32 * K,
    64 * K,
    64 * K, // doubling, then capped
    64 * K, // the 40 000-byte read
    ...Array<number>(SHRINK_AFTER_READS).fill(64 * K), // the small reads; the last one shrinks
    8 * K, // 5000 bytes: partial
    8 * K, // full: grows
    16 * K, // EOF
  ]);
  const total = produced.reduce((a, b) => a + b, 0);
  assert.equal(r.tcpToWs, total);
  const all = new Uint8Array(total);
  let off = 0;
  for (const g of got) {
    all.set(g, off);
    off += g.length;
  }
  assert.equal(off, total);
  let expect = 0;
  off = 0;
  for (const n of produced) {
    for (let i = 0; i < n; i++) {
      if (all[off + i] !== ((expect + i * 7) & 0xff)) assert.fail(`byte ${off + i} differs`);
    }
    expect = (expect + n * 7) & 0xff;
    off += n;
  }
});

Deno.test("bridge: a local stream that fails to read ends with local_close and the error", async () => {
  const [ws, peer] = fakeSocketPair();
  const local: ByteStream = {
    read: () => Promise.reject(new Deno.errors.ConnectionReset("reset by peer")),
    write: (p) => Promise.resolve(p.length),
    closeWrite: () => Promise.resolve(),
    close: () => {},
  };
  const done = bridge(local, ws, { halfClose: true, pingIntervalMs: 0 });
  const r = await finishPeer(peer, done);
  assert.equal(r.cause, "local_close");
  assert.equal(r.tcpToWsErr?.message, "reset by peer");
});

Deno.test("bridge: a timed-out local read is classified as timeout", async () => {
  const [ws, peer] = fakeSocketPair();
  const local: ByteStream = {
    read: () => Promise.reject(new Deno.errors.TimedOut("Connection timed out (os error 110)")),
    write: (p) => Promise.resolve(p.length),
    closeWrite: () => Promise.resolve(),
    close: () => {},
  };
  const r = await finishPeer(peer, bridge(local, ws, { halfClose: false, pingIntervalMs: 0 }));
  assert.equal(r.cause, "timeout");
});

Deno.test("bridge: a slow local reader pushes back on the WebSocket instead of buffering", async () => {
  // The fake allows 64 messages (2 MiB) in flight and TCP buffers hold a few MiB more; the peer
  // must be stalled long before 32 MiB while the client reads nothing.
  const { client, peer, done } = await setup();
  const chunk = new Uint8Array(32768);
  let sent = 0;
  let pending: Promise<void> | undefined;
  while (sent < 64 * 1024 * 1024) {
    const p = peer.send(chunk);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stall = new Promise<"stalled">((r) => timer = setTimeout(() => r("stalled"), 200));
    const winner = await Promise.race([p.then(() => "sent" as const), stall]);
    clearTimeout(timer);
    if (winner === "stalled") {
      pending = p;
      break;
    }
    sent += chunk.length;
  }
  assert.ok(pending, `peer was never pushed back after ${sent} bytes`);
  assert.ok(sent < 32 * 1024 * 1024, `accepted ${sent} bytes before pushing back`);
  client.close();
  peer.closeNow();
  await pending.catch(() => {});
  const r = await done;
  assert.equal(r.cause, "local_close");
});

/** A local stream that records how the bridge ended it; reads wait for that end by default. */
function recordingLocal(read?: () => Promise<number | null>) {
  const ends: string[] = [];
  const ended = Promise.withResolvers<null>();
  const end = (how: string) => {
    ends.push(how);
    ended.resolve(null);
  };
  const local: ByteStream = {
    read: read ?? (() => ended.promise),
    write: (p) => Promise.resolve(p.length),
    closeWrite: () => Promise.resolve(),
    close: () => end("close"),
    reset: () => end("reset"),
  };
  return { local, ends };
}

Deno.test("bridge: a cut tunnel resets the local stream, a clean end closes it", async () => {
  const cases: {
    name: string;
    halfClose: boolean;
    peer: (p: FakeSocket) => Promise<void>;
    end: "close" | "reset";
  }[] = [
    { name: "v1 1000", halfClose: false, peer: (p) => p.close(1000, "done"), end: "close" },
    // Go senders drop their socket; Azure passes that on as 1001 or EOF.
    { name: "v1 1001", halfClose: false, peer: (p) => p.close(1001, "lost"), end: "close" },
    {
      name: "v1 drop after data",
      halfClose: false,
      peer: async (p) => {
        await p.send(enc.encode("x"));
        p.closeNow();
      },
      end: "close",
    },
    {
      name: "v1 drop before data",
      halfClose: false,
      peer: (p) => Promise.resolve(p.closeNow()),
      end: "reset",
    },
    { name: "v1 1011", halfClose: false, peer: (p) => p.close(1011, "boom"), end: "reset" },
    { name: "v1 4000", halfClose: false, peer: (p) => p.close(4000, ""), end: "reset" },
    {
      name: "half-close 1000 before eof",
      halfClose: true,
      peer: (p) => p.close(1000, "done"),
      end: "reset",
    },
    {
      name: "half-close drop",
      halfClose: true,
      peer: async (p) => {
        await p.send(enc.encode("x"));
        p.closeNow();
      },
      end: "reset",
    },
    {
      name: "half-close 1001 after eof",
      halfClose: true,
      peer: async (p) => {
        await p.send(EOF_MESSAGE);
        await p.close(1001, "lost");
      },
      end: "reset",
    },
    {
      name: "half-close eof then 1000",
      halfClose: true,
      peer: async (p) => {
        await p.send(EOF_MESSAGE);
        await p.close(1000, "done");
      },
      end: "close",
    },
  ];
  for (const c of cases) {
    const [ws, peer] = fakeSocketPair();
    const { local, ends } = recordingLocal();
    const done = bridge(local, ws, { halfClose: c.halfClose, pingIntervalMs: 0 });
    await c.peer(peer);
    const r = await done;
    assert.deepEqual(ends, [c.end], c.name);
    assert.equal(r.localReset, c.end === "reset" ? true : undefined, c.name);
    assert.equal(bridgeLogAttrs(r).local_reset, r.localReset, c.name);
  }
});

Deno.test("bridge: a local failure resets the local stream and closes with 1011, never eof", async () => {
  const [ws, peer] = fakeSocketPair();
  const { local, ends } = recordingLocal(() =>
    Promise.reject(new Deno.errors.ConnectionReset("Connection reset by peer (os error 104)"))
  );
  const done = bridge(local, ws, { halfClose: true, pingIntervalMs: 0 });
  assert.equal(await peer.receive(), null);
  assert.deepEqual(peer.closeInfo, { code: 1011, reason: "tunnel cut" });
  assert.equal(peer.sent.length, 0);
  await peer.close(1011, "");
  const r = await done;
  assert.equal(r.cause, "local_close");
  assert.deepEqual(ends, ["reset"]);
});

Deno.test("bridge: a cancelled tunnel resets the local stream and closes with 1001", async () => {
  const [ws, peer] = fakeSocketPair();
  const { local, ends } = recordingLocal();
  const ac = new AbortController();
  const done = bridge(local, ws, { halfClose: true, pingIntervalMs: 0, signal: ac.signal });
  ac.abort(new DOMException("drain timeout", "AbortError"));
  assert.equal(await peer.receive(), null);
  assert.deepEqual(peer.closeInfo, { code: 1001, reason: "going away" });
  await peer.close(1001, "");
  assert.equal((await done).cause, "user_cancel");
  assert.deepEqual(ends, ["reset"]);
});
