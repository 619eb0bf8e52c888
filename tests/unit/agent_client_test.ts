import assert from "node:assert/strict";
import { askAgent, requestTunnel } from "../../lib/agent/client.ts";
import { AgentRefused, readLine, REQUEST_SYNTAX } from "../../lib/agent/protocol.ts";
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

const noRedial = () => Promise.reject(new Error("no redial expected"));

Deno.test("askAgent + spliceToAgent: 1 MiB and stdin's EOF sent before OK, byte-exact both ways", async () => {
  const [user, local] = await tcpPair();
  const [client, agent] = await unixPair();
  const up = pattern(1 << 20, 3);
  const down = pattern(1 << 20, 4);
  const agentSide = (async () => {
    const line = await readLine(agent);
    assert.equal(line?.line, "CONNECT db:22 early");
    await writeAll(agent, enc.encode("EARLY\n"));
    // All of it, EOF included, before the answer: the client did not wait for OK.
    const got = await readAll(agent);
    await writeAll(agent, enc.encode("OK\nhead:"));
    await writeAll(agent, down);
    await agent.closeWrite();
    return [...line!.rest, ...got];
  })();
  const tunnel = await askAgent(client, "db:22", noRedial);
  assert.ok(tunnel);
  const spliced = spliceToAgent(local, tunnel.conn, tunnel.answer);
  const sending = writeAll(user, up).then(() => user.closeWrite());
  const received = await readAll(user);
  await sending;
  assert.equal(sha256(new Uint8Array(await agentSide)), sha256(up));
  assert.equal(dec.decode(received.subarray(0, 5)), "head:");
  assert.equal(sha256(received.subarray(5)), sha256(down));
  await spliced;
  user.close();
  agent.close();
});

Deno.test("askAgent + spliceToAgent: ERR after early bytes is thrown; stdout gets nothing", async () => {
  const [user, local] = await tcpPair();
  const [client, agent] = await unixPair();
  const agentSide = (async () => {
    await readLine(agent);
    await writeAll(agent, enc.encode("EARLY\n"));
    const got = await readAll(agent);
    await writeAll(agent, enc.encode("ERR not_allowed target not allowed\n"));
    agent.close();
    return dec.decode(got);
  })();
  const tunnel = await askAgent(client, "10.0.0.5:22", noRedial);
  assert.ok(tunnel);
  const spliced = spliceToAgent(local, tunnel.conn, tunnel.answer);
  await writeAll(user, enc.encode("SSH-2.0-client"));
  await user.closeWrite();
  await assert.rejects(spliced, (err: Error) => {
    assert.ok(err instanceof AgentRefused);
    assert.equal(err.code, "not_allowed");
    assert.equal(err.message, "target not allowed");
    return true;
  });
  assert.equal(await agentSide, "SSH-2.0-client");
  // The local end is the caller's to close, as when ERR came before it was made.
  local.close();
  assert.equal((await readAll(user)).length, 0);
  user.close();
});

Deno.test("askAgent: an older agent refuses the early line; asked again the old way, nothing sent", async () => {
  const [client, oldAgent] = await unixPair();
  const [client2, oldAgent2] = await unixPair();
  const serving = (async () => {
    assert.equal((await readLine(oldAgent))?.line, "CONNECT db:22 early");
    await writeAll(oldAgent, enc.encode(`ERR bad_request ${REQUEST_SYNTAX}\n`));
    // The client sent the line only, then went.
    assert.equal((await readAll(oldAgent)).length, 0);
    oldAgent.close();
    assert.equal((await readLine(oldAgent2))?.line, "CONNECT db:22");
    await writeAll(oldAgent2, enc.encode("OK\nbanner"));
  })();
  let redials = 0;
  const tunnel = await askAgent(client, "db:22", () => {
    redials++;
    return Promise.resolve(client2);
  });
  assert.equal(redials, 1);
  assert.equal(tunnel?.conn, client2);
  assert.equal(dec.decode(await tunnel.answer), "banner");
  await serving;
  client2.close();
  oldAgent2.close();
});

Deno.test("askAgent: a hang-up before EARLY is no answer, after it a failure; other refusals thrown", async () => {
  let [client, agent] = await unixPair();
  let serving = (async () => {
    await readLine(agent);
    agent.close();
  })();
  assert.equal(await askAgent(client, "a:1", noRedial), null);
  await serving;

  [client, agent] = await unixPair();
  serving = (async () => {
    await readLine(agent);
    await writeAll(agent, enc.encode("EARLY\n"));
    agent.close();
  })();
  const tunnel = await askAgent(client, "a:1", noRedial);
  // The failed answer closed the connection.
  await assert.rejects(tunnel!.answer, { code: "agent_failed" });
  await serving;

  [client, agent] = await unixPair();
  serving = (async () => {
    await readLine(agent);
    await writeAll(agent, enc.encode("ERR bad_request missing port\n"));
  })();
  await assert.rejects(askAgent(client, "a", noRedial), { code: "bad_request" });
  await serving;
  agent.close();
});
