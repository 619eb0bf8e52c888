import assert from "node:assert/strict";
import { stdioStream } from "../../lib/sender/stdio.ts";

Deno.test("stdioStream: close() ends a pending stdin read with EOF and closes stdout once", async () => {
  let closes = 0;
  const written: number[] = [];
  const pendingRead = Promise.withResolvers<number | null>();
  const s = stdioStream({
    stdin: { read: () => pendingRead.promise },
    stdout: {
      write: (p) => {
        written.push(...p);
        return Promise.resolve(p.length);
      },
      close: () => closes++,
    },
  });
  assert.equal(await s.write(new Uint8Array([1, 2])), 2);
  const buf = new Uint8Array(4);
  const read = s.read(buf);
  s.close();
  assert.equal(await read, null);
  assert.equal(await s.read(buf), null);
  // The abandoned read completing later must not write into the caller's buffer.
  pendingRead.resolve(3);
  await pendingRead.promise;
  assert.deepEqual(buf, new Uint8Array(4));
  await s.closeWrite();
  assert.equal(closes, 1);
  assert.deepEqual(written, [1, 2]);
});

Deno.test("stdioStream: reads pass through; closeWrite closes stdout", async () => {
  let closed = false;
  const s = stdioStream({
    stdin: {
      read: (p) => {
        p.set([7, 8, 9]);
        return Promise.resolve(3);
      },
    },
    stdout: { write: (p) => Promise.resolve(p.length), close: () => closed = true },
  });
  const buf = new Uint8Array(8);
  assert.equal(await s.read(buf), 3);
  assert.deepEqual([...buf.subarray(0, 3)], [7, 8, 9]);
  await s.closeWrite();
  assert.ok(closed);
});
