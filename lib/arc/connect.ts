/**
 * `arc connect`: one tunnel between stdin/stdout and the machine's port (an ssh ProxyCommand).
 * Resolves when the tunnel ended cleanly (peer Close 1000 or stdin EOF), rejects otherwise.
 */
import { AztunnelError, errorMessage } from "../errors.ts";
import { getLogger } from "../observe/log.ts";
import { newId } from "../relay/ids.ts";
import type { ByteStream } from "../tunnel/bridge.ts";
import { redactArc } from "./redact.ts";
import { ArcSession, type ArcSessionOptions } from "./session.ts";

export interface ArcConnectOptions extends ArcSessionOptions {
  /** The local side; the CLI passes stdin/stdout. */
  local: ByteStream;
  signal?: AbortSignal;
}

export async function runArcConnect(opts: ArcConnectOptions): Promise<void> {
  const log = (opts.logger ?? getLogger()).with({ bridge_id: newId() });
  const session = new ArcSession({ ...opts, logger: log });
  let ws;
  try {
    await session.start(opts.signal);
    ws = await session.dial(await session.credentials(opts.signal), opts.signal);
  } catch (err) {
    opts.local.close();
    throw err;
  }
  const result = await session.bridge(opts.local, ws, opts.signal);
  if (result.error) {
    throw new AztunnelError("bridge_failed", redactArc(errorMessage(result.error)), {
      cause: result.error,
    });
  }
}
