import assert from "node:assert/strict";
import { getLogger } from "../../lib/observe/log.ts";
import { runConnect } from "../../lib/sender/connect.ts";
import { EnvelopeRejected } from "../../lib/sender/open_tunnel.ts";
import { stdioStream } from "../../lib/sender/stdio.ts";
import { RelayDialError } from "../../lib/relay/dial_error.ts";
import { parseAllowlist } from "../../lib/tunnel/allowlist.ts";
import {
  dec,
  enc,
  readAll,
  startStack,
  startTarget,
  upperEcho,
  writeAll,
} from "./tunnel_harness_test.ts";

async function tcpPair(): Promise<[Deno.TcpConn, Deno.TcpConn]> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const pair = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: l.addr.port }),
    l.accept(),
  ]);
  l.close();
  return pair;
}

Deno.test("connect: local EOF is passed on and the response still arrives; clean end", async () => {
  const stack = await startStack({});
  const target = startTarget(upperEcho);
  const [user, local] = await tcpPair();
  try {
    const done = runConnect({
      relay: stack.relay,
      target: target.addr,
      signal: new AbortController().signal,
      logger: getLogger({ side: "sender" }),
      local,
    });
    await writeAll(user, enc.encode("ssh-ish request"));
    await user.closeWrite();
    assert.equal(dec.decode(await readAll(user)), "SSH-ISH REQUEST<end>");
    await done;
    user.close();
  } finally {
    await stack.close();
    await target.close();
  }
});

Deno.test("connect: returns when the remote side closes first, with stdin still open", async () => {
  const stack = await startStack({});
  const target = startTarget(async (conn) => {
    await writeAll(conn, enc.encode("banner and bye"));
  });
  const out: string[] = [];
  let stdoutClosed = false;
  // A stdin whose read never completes, like a terminal nobody types into.
  const stdin = { read: () => new Promise<number | null>(() => {}) };
  const stdout = {
    write: (p: Uint8Array) => {
      out.push(dec.decode(p));
      return Promise.resolve(p.length);
    },
    close: () => {
      stdoutClosed = true;
    },
  };
  try {
    await runConnect({
      relay: stack.relay,
      target: target.addr,
      signal: new AbortController().signal,
      logger: getLogger({ side: "sender" }),
      local: stdioStream({ stdin, stdout }),
    });
    assert.equal(out.join(""), "banner and bye");
    assert.ok(stdoutClosed);
  } finally {
    await stack.close();
    await target.close();
  }
});

Deno.test("connect: a refusal and a missing listener are failures", async () => {
  const stack = await startStack({ allowlist: parseAllowlist(["127.0.0.1:1"]) });
  try {
    const [user, local] = await tcpPair();
    await assert.rejects(
      runConnect({
        relay: stack.relay,
        target: "10.0.0.5:22",
        signal: new AbortController().signal,
        logger: getLogger({ side: "sender" }),
        local,
      }),
      (err: Error) => {
        assert.ok(err instanceof EnvelopeRejected);
        assert.equal(err.message, "connection rejected (not_allowed): target not allowed");
        return true;
      },
    );
    assert.equal((await readAll(user)).length, 0);
    user.close();

    const [user2, local2] = await tcpPair();
    await assert.rejects(
      runConnect({
        relay: { ...stack.relay, entity: "nobody-listens-here", dialBudgetMs: 300 },
        target: "10.0.0.5:22",
        signal: new AbortController().signal,
        logger: getLogger({ side: "sender" }),
        local: local2,
      }),
      RelayDialError,
    );
    user2.close();
  } finally {
    await stack.close();
  }
});
