/** `--log-format json`: one JSON object per line, with `bridge_id` correlating both sides. */
import assert from "node:assert/strict";
import { startListener, startPortForward, startRelayServer } from "../helpers/proc.ts";
import { readExactly, startEchoServer, writeAll } from "../helpers/servers.ts";

const JSON_LOGS = ["--log-format", "json", "--log-level", "debug"];

function parseLines(name: string, lines: string[]): Record<string, unknown>[] {
  return lines.filter((l) => l.trim() !== "").map((l) => {
    let v: unknown;
    try {
      v = JSON.parse(l);
    } catch {
      assert.fail(`${name} printed a line that is not JSON: ${l}`);
    }
    assert.ok(v !== null && typeof v === "object" && !Array.isArray(v), `${name}: ${l}`);
    const obj = v as Record<string, unknown>;
    assert.equal(typeof obj.msg, "string", `${name}: no msg in ${l}`);
    assert.equal(typeof obj.level, "string", `${name}: no level in ${l}`);
    assert.equal(typeof obj.time, "string", `${name}: no time in ${l}`);
    return obj;
  });
}

Deno.test("logging: json lines on both sides carry the same bridge_id", async () => {
  await using echo = startEchoServer();
  await using relay = await startRelayServer({ globalArgs: JSON_LOGS });
  await using listener = await startListener(relay, { globalArgs: JSON_LOGS });
  await using pf = await startPortForward(relay, echo.addr, { globalArgs: JSON_LOGS });

  const conn = await Deno.connect({ hostname: "127.0.0.1", port: pf.port });
  try {
    await writeAll(conn, new Uint8Array([1, 2, 3]));
    await readExactly(conn, 3);
  } finally {
    conn.close();
  }
  // Both sides log the end of the bridge once the client is gone.
  await pf.proc.waitForLine(/"msg":"bridge ended"/);
  await listener.waitForLine(/"msg":"bridge ended"/);

  const sender = parseLines("sender", pf.proc.stderrLines);
  const listen = parseLines("listener", listener.stderrLines);
  parseLines("relay-server", relay.proc.stderrLines);

  const requested = (lines: Record<string, unknown>[]) =>
    lines.find((l) => l.msg === "connection requested");
  const senderReq = requested(sender);
  const listenerReq = requested(listen);
  assert.ok(senderReq && listenerReq, "both sides log `connection requested`");
  assert.match(String(senderReq.bridge_id), /^[A-Z2-7]{16}$/);
  assert.equal(listenerReq.bridge_id, senderReq.bridge_id);
  assert.equal(listenerReq.target, echo.addr);

  // Every per-connection line carries the id.
  for (const [name, lines] of [["sender", sender], ["listener", listen]] as const) {
    const ended = lines.filter((l) => l.msg === "bridge ended");
    assert.equal(ended.length, 1, `${name} bridge ended lines`);
    assert.equal(ended[0].bridge_id, senderReq.bridge_id, `${name} bridge ended`);
  }
  // A client's normal close: the sender saw its local side end, the listener its peer.
  const senderEnd = sender.find((l) => l.msg === "bridge ended")!;
  const listenerEnd = listen.find((l) => l.msg === "bridge ended")!;
  assert.equal(senderEnd.cause, "local_close");
  assert.equal(senderEnd.tcp_to_ws_err, undefined);
  assert.equal(senderEnd.ws_to_tcp_err, undefined);
  assert.equal(listenerEnd.cause, "peer_close");
  assert.ok(listen.some((l) => typeof l.listener_id === "string"), "listener_id on listener lines");
});
