/** What the demo prints: the components it runs and the commands to try against them. */

/** Where the demo's components listen, and how the relay is keyed. */
export interface DemoLayout {
  relayUrl: string;
  hyco: string;
  /** The listener's `--allow` entries. */
  allow: readonly string[];
  /** Every component binds this address. */
  host: string;
  targetPort: number;
  pfPort: number;
  socksPort: number;
  policy: { name: string; key: string };
  /** The SAS key was made up for this run (not taken from the environment). */
  generatedKey: boolean;
  /** The ops server's `host:port`, when metrics are on. */
  opsAddr?: string;
}

/** The banner: one line per component. */
export function describe(l: DemoLayout): string {
  const keyNote = l.generatedKey
    ? "a SAS key generated for this run"
    : "AZTUNNEL_KEY_NAME/AZTUNNEL_KEY";
  return [
    `aztunnel demo: everything below runs in this process, on ${l.host} only.`,
    "",
    `  relay-server     ${l.relayUrl}  (${keyNote})`,
    `  relay-listener   hybrid connection "${l.hyco}", --allow ${l.allow.join(" --allow ")}`,
    `  HTTP target      http://${l.host}:${l.targetPort}/`,
    `  port-forward     ${l.host}:${l.pfPort} -> ${l.host}:${l.targetPort} (through the relay)`,
    `  socks5-proxy     ${l.host}:${l.socksPort}`,
    ...(l.opsAddr
      ? [`  metrics          http://${l.opsAddr}/metrics  (also /healthz, /readyz)`]
      : []),
    "",
  ].join("\n");
}

/**
 * How to run this CLI again from a shell: the compiled binary, or from source the checkout's
 * bin/aztunnel (the same permissions as the binary, and it reads like the README's commands).
 */
function selfCommand(): string {
  const exe = Deno.execPath();
  if (!/(^|\/)deno(\.exe)?$/.test(exe)) return exe;
  return decodeURIComponent(new URL("../../bin/aztunnel", import.meta.url).pathname);
}

/** The commands a user can paste into another terminal while the demo runs. */
export function tryIt(l: DemoLayout): string {
  const cli = selfCommand();
  const h = l.host;
  // Printing the key is fine only when we made it up for this run; never echo the user's own.
  const exports = l.generatedKey
    ? `export AZTUNNEL_KEY_NAME=${l.policy.name} AZTUNNEL_KEY='${l.policy.key}'`
    : "# AZTUNNEL_KEY_NAME and AZTUNNEL_KEY: the values already in your environment";
  return [
    "Try it (in another terminal):",
    "",
    `  curl http://${h}:${l.pfPort}/`,
    `  curl --socks5-hostname ${h}:${l.socksPort} http://localhost:${l.targetPort}/`,
    "",
    "  # your own clients through the same relay (the listener allows 127.0.0.1:* and localhost:*):",
    `  ${exports}`,
    `  export AZTUNNEL_RELAY_NAME=${l.relayUrl} AZTUNNEL_HYCO_NAME=${l.hyco}`,
    `  ${cli} relay-sender port-forward ${h}:${l.targetPort} -b ${h}:8081`,
    `  ssh -o ProxyCommand="${cli} relay-sender connect --relay ${l.relayUrl} --hyco ${l.hyco} %h:%p" $USER@127.0.0.1`,
    "    (needs an sshd on 127.0.0.1:22)",
  ].join("\n");
}
