/**
 * stdin/stdout as the local end of a tunnel (connect mode). A pending stdin read cannot be
 * interrupted, so `close()` makes the pending and later reads return EOF at once and abandons the
 * underlying read; the process exits right after, which ends it.
 */
import { closeQuietly } from "../async.ts";
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
  /** The private buffer of the last completed read, reused by the next one. */
  let spare: Uint8Array | undefined;
  const closeStdout = () => {
    if (stdoutClosed) return;
    stdoutClosed = true;
    // The runtime may have closed it already.
    closeQuietly(io.stdout);
  };
  return {
    read(p) {
      if (isClosed) return Promise.resolve(null);
      // Reads into a private buffer: an abandoned read must not write into the caller's later.
      // Only a completed read gives it back, so an abandoned one never shares it.
      const own = spare && spare.length >= p.length ? spare : new Uint8Array(p.length);
      spare = undefined;
      const read = io.stdin.read(own.subarray(0, p.length)).then((n) => {
        if (isClosed) return null;
        if (n !== null) p.set(own.subarray(0, n));
        spare = own;
        return n;
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
