import assert from "node:assert/strict";
import { getLogger } from "../../lib/observe/log.ts";
import { runConnect } from "../../lib/sender/connect.ts";
import { AztunnelError } from "../../lib/errors.ts";
import { EnvelopeExchangeError, EnvelopeRejected } from "../../lib/sender/open_tunnel.ts";
import { stdioStream } from "../../lib/sender/stdio.ts";
import { RelayDialError } from "../../lib/relay/dial_error.ts";
import { parseAllowlist } from "../../lib/tunnel/allowlist.ts";
import {
  dec,
  echo,
  enc,
  readAll,
  readExact,
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

Deno.test("connect: Ctrl-C before the tunnel opened is a failure, not a clean exit", async () => {
  const stack = await startStack({});
  const [user, local] = await tcpPair();
  try {
    const ac = new AbortController();
    const done = runConnect({
      relay: { ...stack.relay, entity: "nobody-listens-here" },
      target: "127.0.0.1:22",
      signal: ac.signal,
      logger: getLogger({ side: "sender" }),
      local,
    });
    await stack.logs.waitFor(/msg="relay dial failed \(retrying\)" side=sender/);
    ac.abort(new DOMException("shutdown requested", "AbortError"));
    await assert.rejects(done, (err: Error) => {
      assert.ok(err instanceof AztunnelError);
      assert.equal(err.code, "interrupted");
      assert.equal(err.message, "interrupted before the tunnel opened");
      return true;
    });
    assert.equal((await readAll(user)).length, 0);
    user.close();
  } finally {
    await stack.close();
  }
});

Deno.test("connect: a tunnel cut before the listener's end of data is a failure", async () => {
  // The listener's drain runs out while the tunnel is open: it closes without sending eof.
  const stack = await startStack({ drainTimeoutMs: 0 });
  const target = startTarget(echo);
  const [user, local] = await tcpPair();
  try {
    const done = runConnect({
      relay: stack.relay,
      target: target.addr,
      signal: new AbortController().signal,
      logger: getLogger({ side: "sender" }),
      local,
    });
    // Settles during the stop below: handled from here on, checked after.
    const outcome = done.then(() => undefined, (err: Error) => err);
    await writeAll(user, enc.encode("hello"));
    assert.equal(dec.decode(await readExact(user, 5)), "hello");
    await stack.stopListener();
    const err = await outcome;
    assert.ok(err instanceof AztunnelError, `resolved or failed otherwise: ${err}`);
    assert.equal(err.code, "tunnel_failed");
    assert.equal(
      err.message,
      "tunnel failed: tunnel closed by peer before end of data (close 1000: done)",
    );
    user.close();
  } finally {
    await stack.close();
    await target.close();
  }
});

Deno.test("connect: a listener that never answers the envelope fails after the reply deadline", async () => {
  const stack = await startStack({
    handler: {
      pingIntervalMs: 0,
      dial: (_target, o) =>
        new Promise((_, reject) =>
          o.signal?.addEventListener("abort", () => reject(o.signal?.reason), { once: true })
        ),
    },
  });
  const [user, local] = await tcpPair();
  try {
    await assert.rejects(
      runConnect({
        relay: { ...stack.relay, replyTimeoutMs: 50 },
        target: "127.0.0.1:22",
        signal: new AbortController().signal,
        logger: getLogger({ side: "sender" }),
        local,
      }),
      (err: Error) => {
        assert.ok(err instanceof EnvelopeExchangeError);
        assert.equal(err.code, "reply_timeout");
        assert.equal(err.message, "no reply from listener within 50ms");
        return true;
      },
    );
    const warn = await stack.logs.waitFor(/level=WARN msg="envelope exchange failed" side=sender/);
    assert.match(warn, /target=127\.0\.0\.1:22 error="no reply from listener within 50ms"/);
    assert.equal((await readAll(user)).length, 0);
    user.close();
  } finally {
    await stack.close();
  }
});
