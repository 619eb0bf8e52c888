import assert from "node:assert/strict";
import {
  AgentProtocolError,
  EARLY_ACK,
  encodeEarlyAck,
  encodeReply,
  encodeRequest,
  MAX_LINE,
  parseReply,
  parseRequest,
  readLine,
  refusesEarly,
  REQUEST_SYNTAX,
  withPrefix,
} from "../../lib/agent/protocol.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A reader that returns `chunks` one per read, then EOF. */
function reader(...chunks: string[]) {
  const queue = chunks.map((c) => enc.encode(c));
  return {
    read(p: Uint8Array): Promise<number | null> {
      const next = queue.shift();
      if (!next) return Promise.resolve(null);
      const n = Math.min(p.length, next.length);
      p.set(next.subarray(0, n));
      if (n < next.length) queue.unshift(next.subarray(n));
      return Promise.resolve(n);
    },
  };
}

Deno.test("agent protocol: request and replies round-trip", () => {
  assert.equal(dec.decode(encodeRequest("db:5432")), "CONNECT db:5432\n");
  assert.deepEqual(parseRequest("CONNECT [::1]:22"), { target: "[::1]:22", early: false });
  assert.equal(dec.decode(encodeReply({ ok: true })), "OK\n");
  assert.deepEqual(parseReply("OK"), { ok: true });
  const err = dec.decode(
    encodeReply({ ok: false, code: "not_allowed", message: "target not allowed" }),
  );
  assert.equal(err, "ERR not_allowed target not allowed\n");
  assert.deepEqual(parseReply(err.trimEnd()), {
    ok: false,
    code: "not_allowed",
    message: "target not allowed",
  });
});

Deno.test("agent protocol: the early request, its ack, and an older agent's refusal of it", () => {
  assert.equal(dec.decode(encodeRequest("db:5432", true)), "CONNECT db:5432 early\n");
  assert.deepEqual(parseRequest("CONNECT db:5432 early"), { target: "db:5432", early: true });
  assert.deepEqual(parseRequest("CONNECT early"), { target: "early", early: false });
  assert.equal(dec.decode(encodeEarlyAck()), `${EARLY_ACK}\n`);
  // What an older agent answers to the early line (its parser had no `early`).
  const old = encodeReply({ ok: false, code: "bad_request", message: REQUEST_SYNTAX });
  assert.equal(dec.decode(old), "ERR bad_request expected CONNECT host:port\n");
  assert.equal(refusesEarly(parseReply(dec.decode(old).trimEnd())), true);
  assert.equal(refusesEarly({ ok: false, code: "bad_request", message: "missing port" }), false);
  assert.equal(refusesEarly({ ok: false, code: "not_allowed", message: REQUEST_SYNTAX }), false);
  assert.equal(refusesEarly({ ok: true }), false);
  assert.throws(() => parseReply(EARLY_ACK), AgentProtocolError);
});

Deno.test("agent protocol: an ERR line stays one printable line with a safe code", () => {
  const line = dec.decode(
    encodeReply({ ok: false, code: "bad code!", message: "first\nsecond \u00e9" }),
  );
  assert.equal(line, "ERR failed first\n");
  const long = dec.decode(encodeReply({ ok: false, code: "x", message: "m".repeat(1000) }));
  assert.ok(long.length < MAX_LINE);
  assert.equal(
    dec.decode(encodeReply({ ok: false, code: "x", message: "caf\u00e9" })),
    "ERR x caf?\n",
  );
});

Deno.test("agent protocol: malformed lines are refused", () => {
  for (
    const bad of [
      "",
      "CONNECT",
      "CONNECT ",
      "connect a:1",
      "CONNECT a:1 b",
      "GET / HTTP/1.1",
      "CONNECT a:1 early early",
      "CONNECT a:1  early",
      "CONNECT a:1 EARLY",
    ]
  ) {
    assert.throws(() => parseRequest(bad), AgentProtocolError, bad);
  }
  for (const bad of ["", "ok", "ERR", "ERR b@d x", "OK extra"]) {
    assert.throws(() => parseReply(bad), AgentProtocolError, bad);
  }
});

Deno.test("readLine: across reads, with the bytes after the newline kept", async () => {
  assert.deepEqual(await readLine(reader("CONN", "ECT a:1", "\nda", "ta")), {
    line: "CONNECT a:1",
    rest: enc.encode("da"),
  });
  assert.deepEqual(await readLine(reader("OK\nbanner")), {
    line: "OK",
    rest: enc.encode("banner"),
  });
  assert.equal(await readLine(reader()), null);
});

Deno.test("readLine: bounded, complete and ASCII or refused", async () => {
  await assert.rejects(readLine(reader("x".repeat(MAX_LINE))), {
    code: "agent_protocol",
    message: /longer than 512/,
  });
  // MAX_LINE includes the newline.
  assert.equal(
    (await readLine(reader("x".repeat(MAX_LINE - 1) + "\n")))?.line.length,
    MAX_LINE - 1,
  );
  await assert.rejects(readLine(reader("CONNECT a:1")), { message: "line cut short by EOF" });
  await assert.rejects(readLine(reader("CONNECT \u00e9:1\n")), {
    message: "line is not printable ASCII",
  });
  await assert.rejects(readLine(reader("CONNECT a:1\r\n")), AgentProtocolError);
});

Deno.test("withPrefix: the head first, then the stream; writes pass through", async () => {
  const written: string[] = [];
  let closedWrite = false;
  let closed = false;
  const s = withPrefix({
    ...reader("tail"),
    write: (p: Uint8Array) => {
      written.push(dec.decode(p));
      return Promise.resolve(p.length);
    },
    closeWrite: () => {
      closedWrite = true;
      return Promise.resolve();
    },
    close: () => {
      closed = true;
    },
  }, enc.encode("head"));
  const buf = new Uint8Array(3);
  const got: string[] = [];
  for (let n = await s.read(buf); n !== null; n = await s.read(buf)) {
    got.push(dec.decode(buf.subarray(0, n)));
  }
  assert.deepEqual(got, ["hea", "d", "tai", "l"]);
  await s.write(enc.encode("w"));
  await s.closeWrite();
  s.close();
  assert.deepEqual(written, ["w"]);
  assert.ok(closedWrite && closed);
});
