import assert from "node:assert/strict";
import { ClientInput } from "../../lib/sender/early_data.ts";
import type { ByteStream } from "../../lib/tunnel/bridge.ts";
import { fakeSocketPair } from "../helpers/fake_socket.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A client whose reads the test feeds one at a time (`push`, `eof`, `fail`). */
class ScriptedClient implements ByteStream {
  readonly #chunks: (Uint8Array | null | Error)[] = [];
  #wake: (() => void) | null = null;
  reads = 0;
  closed = false;
  #readWaiters: (() => void)[] = [];

  /** Resolves once `n` reads have been started. */
  async readsStarted(n: number): Promise<void> {
    while (this.reads < n) await new Promise<void>((r) => this.#readWaiters.push(r));
  }

  push(text: string): void {
    this.#chunks.push(enc.encode(text));
    this.#wake?.();
  }
  eof(): void {
    this.#chunks.push(null);
    this.#wake?.();
  }
  fail(err: Error): void {
    this.#chunks.push(err);
    this.#wake?.();
  }

  async read(p: Uint8Array): Promise<number | null> {
    this.reads++;
    for (const w of this.#readWaiters.splice(0)) w();
    while (this.#chunks.length === 0) await new Promise<void>((r) => this.#wake = r);
    const next = this.#chunks.shift()!;
    if (next === null) return null;
    if (next instanceof Error) throw next;
    p.set(next);
    return next.length;
  }
  write(p: Uint8Array): Promise<number> {
    return Promise.resolve(p.length);
  }
  closeWrite(): Promise<void> {
    return Promise.resolve();
  }
  close(): void {
    this.closed = true;
  }
}

/** Reads `input` until `n` bytes came (as the bridge would, with a small buffer). */
async function readText(input: ClientInput, n: number, size = 3): Promise<string> {
  let out = "";
  const buf = new Uint8Array(size);
  while (out.length < n) {
    const got = await input.read(buf);
    assert.notEqual(got, null, `EOF after ${JSON.stringify(out)}`);
    out += dec.decode(buf.subarray(0, got!));
  }
  return out;
}

function binaries(sent: { type: string; data: unknown }[]): string[] {
  return sent.filter((m) => m.type === "binary").map((m) => dec.decode(m.data as Uint8Array));
}

Deno.test("early data: bytes go out before the answer; a pending read is carried into the bridge", async () => {
  const client = new ScriptedClient();
  const input = new ClientInput(client);
  const [ours, theirs] = fakeSocketPair();
  const pump = input.pump();
  pump.start(ours);
  client.push("hello");
  assert.equal(dec.decode((await theirs.receive())!.data as Uint8Array), "hello");
  // The pump is now waiting on a second read; the answer arrives.
  await client.readsStarted(2);
  await pump.settle(true);
  input.accepted(pump.sent);
  assert.equal(pump.sent, 5);
  // The client's next bytes were read by the pump's pending read: the bridge gets them.
  client.push("world!");
  assert.equal(await readText(input, 6), "world!");
  assert.equal(client.reads, 2, "the pending read was reused, not doubled");
  client.push("more");
  assert.equal(await readText(input, 4, 64), "more");
  assert.deepEqual(binaries(ours.sent), ["hello"], "nothing sent twice");
});

Deno.test("early data: an EOF before the answer reaches the bridge after it", async () => {
  const client = new ScriptedClient();
  const input = new ClientInput(client);
  const [ours, theirs] = fakeSocketPair();
  const pump = input.pump();
  pump.start(ours);
  client.push("req");
  client.eof();
  await theirs.receive();
  await client.readsStarted(2);
  await pump.settle(true);
  input.accepted(pump.sent);
  assert.equal(await input.read(new Uint8Array(8)), null);
  assert.equal(client.reads, 2);
});

Deno.test("early data: a read error before the answer is the bridge's first read's error", async () => {
  const client = new ScriptedClient();
  const input = new ClientInput(client);
  const [ours] = fakeSocketPair();
  const pump = input.pump();
  pump.start(ours);
  client.fail(new Deno.errors.ConnectionReset("reset"));
  await client.readsStarted(1);
  await pump.settle(true);
  input.accepted(pump.sent);
  await assert.rejects(input.read(new Uint8Array(8)), Deno.errors.ConnectionReset);
});

Deno.test("early data: a retry resends the held bytes; a cold leg gets them from the bridge", async () => {
  const client = new ScriptedClient();
  const input = new ClientInput(client);
  const [first, firstPeer] = fakeSocketPair();
  const pump1 = input.pump();
  pump1.start(first);
  client.push("abc");
  await firstPeer.receive();
  client.push("def");
  await firstPeer.receive();
  // The leg dies unanswered.
  first.closeNow();
  await pump1.settle(false);
  assert.equal(input.heldBytes, 6);

  // Second warm leg: the held bytes again, in order, then new ones.
  const [second, secondPeer] = fakeSocketPair();
  const pump2 = input.pump();
  pump2.start(second);
  client.push("gh");
  const got: string[] = [];
  for (let i = 0; i < 3; i++) {
    got.push(dec.decode((await secondPeer.receive())!.data as Uint8Array));
  }
  assert.deepEqual(got, ["abc", "def", "gh"]);
  await pump2.settle(true);
  input.accepted(pump2.sent);
  assert.equal(input.heldBytes, 0);

  // A cold leg instead (no early data): everything held comes from read() first.
  const coldClient = new ScriptedClient();
  const cold = new ClientInput(coldClient);
  const [leg, legPeer] = fakeSocketPair();
  const p = cold.pump();
  p.start(leg);
  coldClient.push("xyz");
  await legPeer.receive();
  leg.closeNow();
  await p.settle(false);
  cold.accepted(0);
  coldClient.push("next");
  assert.equal(await readText(cold, 7, 64), "xyznext");
});

Deno.test("early data: an answer mid-resend replays what the leg did not get", async () => {
  const client = new ScriptedClient();
  const input = new ClientInput(client);
  const [first, firstPeer] = fakeSocketPair();
  const pump1 = input.pump();
  pump1.start(first);
  client.push("one");
  await firstPeer.receive();
  client.push("two");
  await firstPeer.receive();
  first.closeNow();
  await pump1.settle(false);
  // One message of room: the second resend waits, and the answer comes first.
  const [second, secondPeer] = fakeSocketPair(0);
  const pump2 = input.pump();
  pump2.start(second);
  await second.until(() => second.sent.length === 1);
  const settled = pump2.settle(true);
  assert.equal(dec.decode((await secondPeer.receive())!.data as Uint8Array), "one");
  await settled;
  input.accepted(pump2.sent);
  assert.equal(pump2.sent, 3);
  assert.equal(await readText(input, 3, 64), "two");
});

Deno.test("early data: the pump stops reading at its limit until the answer", async () => {
  const client = new ScriptedClient();
  const input = new ClientInput(client);
  const [ours, theirs] = fakeSocketPair();
  const pump = input.pump(4);
  pump.start(ours);
  client.push("12345");
  await theirs.receive();
  client.push("6");
  await pump.settle(true);
  assert.equal(client.reads, 1, "no read past the limit");
  input.accepted(pump.sent);
  assert.equal(await readText(input, 1, 64), "6");
});

Deno.test("early data: close and reset pass through to the client", () => {
  const client = new ScriptedClient();
  const input = new ClientInput(client);
  assert.equal(input.reset, undefined, "a stream that cannot reset gets no reset");
  input.close();
  assert.ok(client.closed);
  let reset = false;
  const resettable = new ClientInput(
    Object.assign(new ScriptedClient(), { reset: () => reset = true }),
  );
  resettable.reset?.();
  assert.ok(reset);
});
