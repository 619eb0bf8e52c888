/**
 * stdin/stdout as the local end of a tunnel (connect mode). A pending stdin read cannot be
 * interrupted, so `close()` makes the pending and later reads return EOF at once and abandons the
 * underlying read; the process exits right after, which ends it.
 */
import type { ByteStream } from "../tunnel/bridge.ts";

export interface StdioHandles {
  stdin: { read(p: Uint8Array): Promise<number | null> };
  stdout: { write(p: Uint8Array): Promise<number>; close(): void };
}

export function stdioStream(
  io: StdioHandles = { stdin: Deno.stdin, stdout: Deno.stdout },
): ByteStream {
  const { promise: closed, resolve: markClosed } = Promise.withResolvers<null>();
  let isClosed = false;
  let stdoutClosed = false;
  const closeStdout = () => {
    if (stdoutClosed) return;
    stdoutClosed = true;
    try {
      io.stdout.close();
    } catch {
      // already closed by the runtime
    }
  };
  return {
    read(p) {
      if (isClosed) return Promise.resolve(null);
      // Reads into a private buffer: an abandoned read must not write into the caller's later.
      const own = new Uint8Array(p.length);
      const read = io.stdin.read(own).then((n) => {
        if (n !== null && !isClosed) p.set(own.subarray(0, n));
        return isClosed ? null : n;
      });
      read.catch(() => {});
      return Promise.race([read, closed]);
    },
    write(p) {
      return io.stdout.write(p);
    },
    closeWrite() {
      closeStdout();
      return Promise.resolve();
    },
    close() {
      isClosed = true;
      markClosed(null);
      closeStdout();
    },
  };
}
