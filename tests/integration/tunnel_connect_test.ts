import assert from "node:assert/strict";
import { getLogger } from "../../lib/observe/log.ts";
import { runConnect, type SenderConnectOptions } from "../../lib/sender/connect.ts";
import { AztunnelError } from "../../lib/errors.ts";
import { EnvelopeExchangeError, EnvelopeRejected } from "../../lib/sender/open_tunnel.ts";
import { stdioStream } from "../../lib/sender/stdio.ts";
import { RelayDialError } from "../../lib/relay/dial_error.ts";
import { parseAllowlist } from "../../lib/tunnel/allowlist.ts";
import { readAll, readExactly, tcpPair, writeAll } from "../helpers/servers.ts";
import {
  dec,
  echo,
  enc,
  hangingDial,
  type Stack,
  startStack,
  startTarget,
  upperEcho,
} from "../helpers/tunnel_stack.ts";

/** runConnect through the stack's relay, as side=sender, with no stop; `extra` overrides. */
function connect(
  stack: Stack,
  target: string,
  local: SenderConnectOptions["local"],
  extra: Partial<SenderConnectOptions> = {},
): Promise<void> {
  return runConnect({
    relay: stack.relay,
    target,
    signal: new AbortController().signal,
    logger: getLogger({ side: "sender" }),
    local,
    ...extra,
  });
}

Deno.test("connect: local EOF is passed on and the response still arrives; clean end", async () => {
  await using target = startTarget(upperEcho);
  await using stack = await startStack({});
  const [user, local] = await tcpPair();
  const done = connect(stack, target.addr, local);
  await writeAll(user, enc.encode("ssh-ish request"));
  await user.closeWrite();
  assert.equal(dec.decode(await readAll(user)), "SSH-ISH REQUEST<end>");
  await done;
  user.close();
});

Deno.test("connect: returns when the remote side closes first, with stdin still open", async () => {
  await using target = startTarget(async (conn) => {
    await writeAll(conn, enc.encode("banner and bye"));
  });
  await using stack = await startStack({});
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
  await connect(stack, target.addr, stdioStream({ stdin, stdout }));
  assert.equal(out.join(""), "banner and bye");
  assert.ok(stdoutClosed);
});

Deno.test("connect: a refusal and a missing listener are failures", async () => {
  await using stack = await startStack({ allowlist: parseAllowlist(["127.0.0.1:1"]) });
  const [user, local] = await tcpPair();
  await assert.rejects(
    connect(stack, "10.0.0.5:22", local),
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
    connect(stack, "10.0.0.5:22", local2, {
      relay: { ...stack.relay, entity: "nobody-listens-here", dialBudgetMs: 300 },
    }),
    RelayDialError,
  );
  user2.close();
});

Deno.test("connect: Ctrl-C before the tunnel opened is a failure, not a clean exit", async () => {
  await using stack = await startStack({});
  const [user, local] = await tcpPair();
  const ac = new AbortController();
  const done = connect(stack, "127.0.0.1:22", local, {
    relay: { ...stack.relay, entity: "nobody-listens-here" },
    signal: ac.signal,
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
});

Deno.test("connect: a tunnel cut before the listener's end of data is a failure", async () => {
  // The listener's drain runs out while the tunnel is open: it closes without sending eof.
  await using target = startTarget(echo);
  await using stack = await startStack({ drainTimeoutMs: 0 });
  const [user, local] = await tcpPair();
  const done = connect(stack, target.addr, local);
  // Settles during the stop below: handled from here on, checked after.
  const outcome = done.then(() => undefined, (err: Error) => err);
  await writeAll(user, enc.encode("hello"));
  assert.equal(dec.decode(await readExactly(user, 5)), "hello");
  await stack.stopListener();
  const err = await outcome;
  assert.ok(err instanceof AztunnelError, `resolved or failed otherwise: ${err}`);
  assert.equal(err.code, "tunnel_failed");
  assert.equal(
    err.message,
    "tunnel failed: tunnel closed by peer before end of data (close 1001: going away)",
  );
  user.close();
});

Deno.test("connect: a listener that never answers the envelope fails after the reply deadline", async () => {
  await using stack = await startStack({ handler: { pingIntervalMs: 0, dial: hangingDial } });
  const [user, local] = await tcpPair();
  await assert.rejects(
    connect(stack, "127.0.0.1:22", local, { relay: { ...stack.relay, replyTimeoutMs: 50 } }),
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
});
