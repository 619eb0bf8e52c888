/** How errors and logs name a peer's Close, so every layer spells it the same way. */
import type { CloseInfo } from "./types.ts";

/**
 * `1001: going away`, or the bare code when the Close gave no reason; 1005 (no status) when there
 * is no Close. The relay's control channel joins code and reason with a space, as Azure's own
 * messages do.
 */
export function describeClose(info: CloseInfo | null, separator = ": "): string {
  const code = info?.code ?? 1005;
  return info?.reason ? `${code}${separator}${info.reason}` : `${code}`;
}
