/**
 * Where the agent of one relay + hybrid connection listens: a Unix socket named by a hash of the
 * two (so any `--relay` spelling of the same endpoint finds the same agent, and no name leaks into
 * a file name), in a per-user directory: `$XDG_RUNTIME_DIR/aztunnel/`, else
 * `$TMPDIR/aztunnel-$UID/` (macOS has no XDG_RUNTIME_DIR; its TMPDIR is per user already).
 */
import { AztunnelError } from "../errors.ts";
import type { RelayEndpoint } from "../relay/endpoint.ts";
import type { EnvReader } from "../relay/token_from_env.ts";

export interface AgentPaths {
  /** The private directory (0700, ours). */
  dir: string;
  /** The Unix socket. */
  socket: string;
  /** Held locked (flock) by the running agent, so two agents never claim one socket. */
  lock: string;
}

/** Hex digits of the SHA-256 that name the socket: 64 bits, far from any collision. */
const NAME_HEX = 16;
/** sun_path is 104 bytes on macOS (108 on Linux), including the terminating NUL. */
const MAX_SOCKET_PATH = 103;

/** Unix sockets the agent needs; Windows takes the direct path. */
export function agentSupported(os: typeof Deno.build.os = Deno.build.os): boolean {
  return os !== "windows";
}

/** The per-user directory; `uid` is the current user's (null on Windows). */
export function agentDir(env: EnvReader, uid: number | null): string {
  const runtime = env.get("XDG_RUNTIME_DIR") ?? "";
  // The spec requires an absolute path; anything else is ignored as XDG says.
  if (runtime.startsWith("/")) return `${trimSlash(runtime)}/aztunnel`;
  const tmp = env.get("TMPDIR") || "/tmp";
  return `${trimSlash(tmp)}/aztunnel-${uid ?? "unknown"}`;
}

/** The agent's paths for `endpoint` + `entity`. Throws (code `agent_path`) when too long. */
export async function agentPaths(
  endpoint: RelayEndpoint,
  entity: string,
  env: EnvReader = Deno.env,
  uid: number | null = Deno.uid(),
): Promise<AgentPaths> {
  const dir = agentDir(env, uid);
  const key = `${endpoint.scheme}://${endpoint.host.toLowerCase()}/${entity}`;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key));
  const name = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("")
    .slice(0, NAME_HEX);
  const socket = `${dir}/${name}.sock`;
  if (new TextEncoder().encode(socket).length > MAX_SOCKET_PATH) {
    throw new AztunnelError(
      "agent_path",
      `agent socket path ${socket} is longer than ${MAX_SOCKET_PATH} bytes: set XDG_RUNTIME_DIR or TMPDIR to a shorter directory`,
    );
  }
  return { dir, socket, lock: `${dir}/${name}.lock` };
}

function trimSlash(p: string): string {
  return p.length > 1 ? p.replace(/\/+$/, "") : p;
}
