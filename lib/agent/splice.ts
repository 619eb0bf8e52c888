/**
 * `relay-sender connect` through the agent: stdin/stdout spliced to the agent socket with
 * half-close both ways. As in the direct path, the remote end ends the session: once the agent's
 * side reaches EOF, stdout is closed and the splice returns even if stdin is still open.
 */
import { closeQuietly } from "../async.ts";
import { AztunnelError, errorMessage } from "../errors.ts";
import { writeAll } from "../net/write_all.ts";
import type { ByteStream } from "../tunnel/bridge.ts";

const BUFFER = 64 * 1024;

/**
 * Runs until the agent's data ends (then resolves) or fails (then throws code `agent_failed`), or
 * `signal` aborts (resolves). Both ends are closed. `answer` is the data that came with the
 * agent's `OK`, or its wait: local data goes up from the start (early data), the agent's only once
 * it has resolved. Its rejection (ERR) is thrown as it is, with the agent end closed and the local
 * end left to the caller, as when a refusal came before it was made (a pending read of it ends
 * with it, or with the process).
 */
export async function spliceToAgent(
  local: ByteStream,
  agent: Deno.Conn,
  answer: Uint8Array | Promise<Uint8Array>,
  signal?: AbortSignal,
): Promise<void> {
  const stop = () => {
    closeQuietly(local);
    closeQuietly(agent);
  };
  signal?.addEventListener("abort", stop, { once: true });
  // Stdin's EOF before the answer is passed on too: the agent sends it after the answer.
  const up = pump(local, agent).then(() => agent.closeWrite()).catch(() => {});
  let head: Uint8Array;
  try {
    head = await answer;
  } catch (err) {
    signal?.removeEventListener("abort", stop);
    closeQuietly(agent);
    throw err;
  }
  try {
    if (head.length > 0) await writeAll(local, head);
    await pump(agent, local);
    await local.closeWrite();
  } catch (err) {
    if (!signal?.aborted) {
      throw new AztunnelError("agent_failed", `agent tunnel failed: ${errorMessage(err)}`, {
        cause: err,
      });
    }
  } finally {
    signal?.removeEventListener("abort", stop);
    stop();
    await up;
  }
}

/** Copies `from` to `to` until EOF; each write completes before the next read. */
async function pump(from: Pick<ByteStream, "read">, to: Pick<ByteStream, "write">) {
  const buf = new Uint8Array(BUFFER);
  for (;;) {
    const n = await from.read(buf);
    if (n === null) return;
    await writeAll(to, buf.subarray(0, n));
  }
}
