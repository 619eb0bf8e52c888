/** The loopback casts: the aztunnel tunnel as three processes, and `ssh -L` as the baseline. */
import {
  type BoundProc,
  freePort,
  Proc,
  type RelayServer,
  startListener,
  startPortForward,
  startRelayServer,
} from "../../tests/helpers/proc.ts";
import { sshAvailable, startSshd } from "../../tests/helpers/sshd.ts";

export interface Tunnel {
  relay: RelayServer;
  listener: Proc;
  pf: BoundProc;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface TlsFiles {
  certFile: string;
  keyFile: string;
  caFile: string;
}

/** The cast; with `tls`, relay-server serves wss:// and both clients trust its CA. */
export async function startTunnel(target: string, hyco: string, tls?: TlsFiles): Promise<Tunnel> {
  const quiet = ["--log-level", "info"];
  const serverArgs = tls ? ["--tls-cert", tls.certFile, "--tls-key", tls.keyFile] : [];
  const clientArgs = tls ? ["--relay-ca-cert", tls.caFile] : [];
  const relay = await startRelayServer({ globalArgs: quiet, args: serverArgs });
  const listener = await startListener(relay, { hyco, globalArgs: quiet, args: clientArgs });
  const pf = await startPortForward(relay, target, { hyco, globalArgs: quiet, args: clientArgs });
  return {
    relay,
    listener,
    pf,
    async [Symbol.asyncDispose]() {
      await pf[Symbol.asyncDispose]();
      await listener[Symbol.asyncDispose]();
      await relay[Symbol.asyncDispose]();
    },
  };
}

export interface SshForward extends AsyncDisposable {
  proc: Proc;
  port: number;
  cipher: string;
}

/** `ssh -L` to `targetPort` through a throw-away sshd; undefined without ssh/sshd. */
export async function startSshForward(targetPort: number): Promise<SshForward | undefined> {
  if (!sshAvailable) return undefined;
  const sshd = await startSshd();
  const localPort = freePort();
  const opts = sshd.clientOptions.filter((o, i, all) =>
    !o.startsWith("LogLevel=") && !(o === "-o" && all[i + 1]?.startsWith("LogLevel="))
  );
  const proc = new Proc("ssh", [
    ...opts,
    "-v",
    "-N",
    "-o",
    "ExitOnForwardFailure=yes",
    "-L",
    `127.0.0.1:${localPort}:127.0.0.1:${targetPort}`,
    "-p",
    String(sshd.port),
    `${sshd.user}@127.0.0.1`,
  ], { name: "ssh -L" });
  try {
    const m = await proc.waitForLine(/kex: server->client cipher: (\S+)/, 20_000);
    await proc.waitForLine(/Entering interactive session/, 20_000);
    return {
      proc,
      port: localPort,
      cipher: m[1],
      async [Symbol.asyncDispose]() {
        await proc.kill("SIGTERM");
        await sshd[Symbol.asyncDispose]();
      },
    };
  } catch (err) {
    await proc.kill("SIGKILL");
    await sshd[Symbol.asyncDispose]();
    throw err;
  }
}
