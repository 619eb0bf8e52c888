import assert from "node:assert/strict";
import { configureLogging, getLogger, logfmtValue, resetLogging } from "../../lib/observe/log.ts";

const TIME = String.raw`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}(?:Z|[+-]\d{2}:\d{2})`;

async function capture(
  level: "debug" | "info" | "warn" | "error",
  format: "logfmt" | "json",
  fn: () => void,
): Promise<string[]> {
  const lines: string[] = [];
  await configureLogging({ level, format, write: (l) => lines.push(l) });
  try {
    fn();
  } finally {
    await resetLogging();
  }
  return lines;
}

Deno.test("logfmt lines have the Go slog shape and quoting", async () => {
  const lines = await capture("info", "logfmt", () => {
    const log = getLogger({ listener_id: "ABCDEFGHIJKLMNOP" });
    log.info("control_started", { relay_url: "wss://ns.servicebus.windows.net", n: 3 });
    log.with({ bridge_id: "QRSTUVWXYZ234567" }).warn("dial target failed", {
      target: "127.0.0.1:1",
      error: new Error("connection refused (os error 111)"),
      code: "",
      skipped: undefined,
    });
    log.debug("not shown");
  });
  assert.equal(lines.length, 2);
  assert.match(
    lines[0],
    new RegExp(
      `^time=${TIME} level=INFO msg=control_started listener_id=ABCDEFGHIJKLMNOP relay_url=wss://ns.servicebus.windows.net n=3\n$`,
    ),
  );
  assert.match(
    lines[1],
    new RegExp(
      `^time=${TIME} level=WARN msg="dial target failed" listener_id=ABCDEFGHIJKLMNOP bridge_id=QRSTUVWXYZ234567 target=127.0.0.1:1 error="connection refused \\(os error 111\\)" code=""\n$`,
    ),
  );
});

Deno.test("json lines carry the same fields", async () => {
  const lines = await capture("debug", "json", () => {
    getLogger({ bridge_id: "B" }).debug("bridge ended", { cause: "local_close", tcp_to_ws: 5 });
    getLogger().error("a {brace} stays", { err: new Error("x") });
  });
  assert.equal(lines.length, 2);
  const first = JSON.parse(lines[0]);
  assert.match(first.time, new RegExp(`^${TIME}$`));
  delete first.time;
  assert.deepEqual(first, {
    level: "DEBUG",
    msg: "bridge ended",
    bridge_id: "B",
    cause: "local_close",
    tcp_to_ws: 5,
  });
  const second = JSON.parse(lines[1]);
  assert.equal(second.msg, "a {brace} stays");
  assert.equal(second.err, "x");
});

Deno.test("logfmtValue quotes only when needed", () => {
  assert.equal(logfmtValue("plain"), "plain");
  assert.equal(logfmtValue(""), '""');
  assert.equal(logfmtValue("a b"), '"a b"');
  assert.equal(logfmtValue("k=v"), '"k=v"');
  assert.equal(logfmtValue('say "hi"'), '"say \\"hi\\""');
  assert.equal(logfmtValue("line\nbreak"), '"line\\nbreak"');
});
