import assert from "node:assert/strict";
import {
  listenerWaitMessage,
  noticeIfSlow,
  relayWaitMessage,
  WAIT_NOTICE_MS,
} from "../../lib/sender/wait_notice.ts";
import { dialTarget, type DialTargetOptions } from "../../lib/tunnel/dial_target.ts";
import { WsHandshakeError } from "../../lib/ws/errors.ts";
import type { LogCapture } from "../helpers/logs.ts";
import { roundTrip } from "../helpers/servers.ts";
import { echo, startPortForward, startStack, startTarget } from "../helpers/tunnel_stack.ts";

Deno.test("noticeIfSlow: a pending wait is reported once, then the outcome passes through", async () => {
  const work = Promise.withResolvers<string>();
  const noticed = Promise.withResolvers<void>();
  let notices = 0;
  const waiting = noticeIfSlow(work.promise, 10, () => {
    notices++;
    noticed.resolve();
  });
  await noticed.promise;
  work.resolve("done");
  assert.equal(await waiting, "done");
  assert.equal(notices, 1);
});

Deno.test("noticeIfSlow: a short wait says nothing, and a failure passes through", async () => {
  let notices = 0;
  assert.equal(await noticeIfSlow(Promise.resolve(1), 10, () => notices++), 1);
  await assert.rejects(
    noticeIfSlow(Promise.reject(new Error("boom")), 10, () => notices++),
    /boom/,
  );
  assert.equal(notices, 0);
  assert.equal(WAIT_NOTICE_MS, 5000);
});

Deno.test("relayWaitMessage names the attempt and the last answer", () => {
  const notFound = new WsHandshakeError("unexpected status 404", {
    status: 404,
    statusText: "Endpoint does not exist: no listener is connected",
    headers: new Headers(),
    body: "",
  });
  assert.equal(
    relayWaitMessage(2, notFound),
    "still waiting for the relay (attempt 3, last: HTTP 404 Endpoint does not exist: no listener is connected)",
  );
  assert.equal(relayWaitMessage(0), "still waiting for the relay (attempt 1)");
});

Deno.test("listenerWaitMessage names the target", () => {
  assert.equal(
    listenerWaitMessage("db.internal:5432"),
    "still waiting for the listener to connect to db.internal:5432",
  );
});

Deno.test("port-forward: a listener slow to reach its target gets one WARN naming the target", async () => {
  await using target = startTarget(echo);
  const logs = Promise.withResolvers<LogCapture>();
  // The target "accepts" only once the sender has said it is waiting.
  const slowDial = async (addr: string, o: DialTargetOptions) => {
    await (await logs.promise).waitFor(/level=WARN msg="still waiting for the listener/);
    return dialTarget(addr, o);
  };
  await using stack = await startStack({ allowlist: null, handler: { dial: slowDial } });
  logs.resolve(stack.logs);
  await using fwd = await startPortForward({ ...stack.relay, waitNoticeMs: 50 }, target.addr);
  const client = await fwd.connect();
  await roundTrip(client, "slow but there");
  client.close();
  const line = await stack.logs.waitFor(/msg="still waiting for the listener/);
  assert.match(
    line,
    new RegExp(
      `level=WARN msg="still waiting for the listener to connect to ${target.addr}" side=sender ` +
        `bridge_id=[A-Z2-7]{16} target=${target.addr}\\n$`,
    ),
  );
  await stack.logs.waitFor(/msg="bridge ended" side=sender/);
  assert.equal(stack.logs.count(/still waiting/), 1, "one WARN per wait");
});

Deno.test("port-forward: a relay dial still retrying gets one WARN with the attempt and last answer", async () => {
  await using stack = await startStack({ allowlist: null });
  const relay = { ...stack.relay, entity: "nobody-listens-here", waitNoticeMs: 120 };
  await using fwd = await startPortForward(relay, "127.0.0.1:9");
  const client = await fwd.connect();
  const line = await stack.logs.waitFor(/msg="still waiting for the relay/);
  assert.match(
    line,
    /level=WARN msg="still waiting for the relay \(attempt \d+, last: HTTP 404 Endpoint does not exist: no listener is connected\)" side=sender bridge_id=[A-Z2-7]{16} target=127\.0\.0\.1:9\n$/,
  );
  // Later retries (50, 100, 200 ms…) add their own lines, never a second notice.
  await stack.logs.waitFor(/relay dial failed \(retrying\)/, 20_000, 4);
  assert.equal(stack.logs.count(/still waiting/), 1);
  client.close();
});

Deno.test("port-forward: a quick tunnel says nothing about waiting", async () => {
  await using target = startTarget(echo);
  await using stack = await startStack({ allowlist: null });
  await using fwd = await startPortForward(stack.relay, target.addr);
  const client = await fwd.connect();
  await roundTrip(client, "quick");
  client.close();
  await stack.logs.waitFor(/msg="bridge ended" side=sender/);
  assert.equal(stack.logs.count(/still waiting/), 0);
});
