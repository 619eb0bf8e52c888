import assert from "node:assert/strict";
import { requestTunnel } from "../../lib/agent/client.ts";
import { AgentRefused, readLine } from "../../lib/agent/protocol.ts";
import { spliceToAgent } from "../../lib/agent/splice.ts";
import { pattern, sha256 } from "../helpers/bytes.ts";
import { readAll, tcpPair, writeAll } from "../helpers/servers.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Both ends of one Unix socket connection: [client, agent]. */
async function unixPair(): Promise<[Deno.UnixConn, Deno.UnixConn]> {
  const dir = await Deno.makeTempDir({ prefix: "agent-client-" });
  const l = Deno.listen({ transport: "unix", path: `${dir}/s.sock` });
  try {
    return await Promise.all([
      Deno.connect({ transport: "unix", path: `${dir}/s.sock` }),
      l.accept(),
    ]);
  } finally {
    l.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("requestTunnel: OK, with the data that followed it", async () => {
  const [client, agent] = await unixPair();
  const serving = (async () => {
    assert.equal((await readLine(agent))?.line, "CONNECT db:5432");
    await writeAll(agent, enc.encode("OK\nbanner"));
  })();
  assert.equal(dec.decode((await requestTunnel(client, "db:5432")) ?? undefined), "banner");
  await serving;
  client.close();
  agent.close();
});

Deno.test("requestTunnel: ERR is the agent's code and message; a hang-up is no answer", async () => {
  let [client, agent] = await unixPair();
  let serving = (async () => {
    await readLine(agent);
    await writeAll(
      agent,
      enc.encode("ERR not_allowed connection rejected (not_allowed): target not allowed\n"),
    );
  })();
  await assert.rejects(requestTunnel(client, "10.0.0.5:22"), (err: Error) => {
    assert.ok(err instanceof AgentRefused);
    assert.equal(err.code, "not_allowed");
    assert.equal(err.message, "connection rejected (not_allowed): target not allowed");
    return true;
  });
  await serving;
  agent.close();

  [client, agent] = await unixPair();
  serving = (async () => {
    await readLine(agent);
    agent.close();
  })();
  assert.equal(await requestTunnel(client, "a:1"), null);
  await serving;
});

Deno.test("spliceToAgent: byte-exact both ways with half-close, the head first", async () => {
  const [user, local] = await tcpPair();
  const [client, agent] = await unixPair();
  const up = pattern(1 << 20, 1);
  const down = pattern(1 << 20, 2);
  const spliced = spliceToAgent(local, client, enc.encode("head:"));
  const agentSide = (async () => {
    const got = await readAll(agent);
    // Only after the user's EOF arrived does the agent answer, then half-closes.
    await writeAll(agent, down);
    await agent.closeWrite();
    return got;
  })();
  const sending = (async () => {
    await writeAll(user, up);
    await user.closeWrite();
  })();
  const received = await readAll(user);
  await sending;
  assert.equal(sha256(await agentSide), sha256(up));
  assert.equal(dec.decode(received.subarray(0, 5)), "head:");
  assert.equal(sha256(received.subarray(5)), sha256(down));
  await spliced;
  user.close();
  agent.close();
});

Deno.test("spliceToAgent: the agent's EOF ends it while stdin is still open", async () => {
  const [user, local] = await tcpPair();
  const [client, agent] = await unixPair();
  const spliced = spliceToAgent(local, client, new Uint8Array());
  await writeAll(agent, enc.encode("bye"));
  agent.close();
  await spliced;
  assert.equal(dec.decode(await readAll(user)), "bye");
  user.close();
});

Deno.test("spliceToAgent: a stop ends it and closes both ends", async () => {
  const [user, local] = await tcpPair();
  const [client, agent] = await unixPair();
  const ac = new AbortController();
  const spliced = spliceToAgent(local, client, new Uint8Array(), ac.signal);
  ac.abort();
  await spliced;
  assert.equal((await readAll(user)).length, 0);
  assert.equal((await readAll(agent)).length, 0);
  user.close();
  agent.close();
});
