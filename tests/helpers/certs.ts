/** Throw-away TLS material made with openssl, for wss:// tests. */

/** Whether `openssl` runs here; tests that need it are ignored without it. */
export const opensslAvailable = (() => {
  try {
    return new Deno.Command("openssl", { args: ["version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();

export interface TestCerts extends AsyncDisposable {
  dir: string;
  /** PEM of the CA, and its file (for --relay-ca-cert). */
  ca: string;
  caFile: string;
  /** PEM of the server certificate (localhost, 127.0.0.1) and its key. */
  cert: string;
  key: string;
}

/**
 * A private CA and a server certificate for localhost / 127.0.0.1 (plus `extraDnsNames`) signed
 * by it; disposing removes them.
 */
export async function makeTestCerts(
  opts: { extraDnsNames?: string[] } = {},
): Promise<TestCerts> {
  const dir = await Deno.makeTempDir({ prefix: "aztunnel_tls_" });
  const openssl = async (...args: string[]) => {
    const out = await new Deno.Command("openssl", {
      args,
      cwd: dir,
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
    }
  };
  try {
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    await openssl(
      "req",
      "-x509",
      ...ec,
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-days",
      "2",
      "-subj",
      "/CN=aztunnel test CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign",
    );
    await openssl("req", ...ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=localhost");
    await Deno.writeTextFile(
      `${dir}/ext.cnf`,
      `subjectAltName=${
        ["localhost", ...(opts.extraDnsNames ?? [])].map((n) => `DNS:${n}`).join(",")
      },` +
        "IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    );
    await openssl(
      "x509",
      "-req",
      "-in",
      "srv.csr",
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      "srv.crt",
      "-days",
      "2",
      "-extfile",
      "ext.cnf",
    );
    const read = (f: string) => Deno.readTextFile(`${dir}/${f}`);
    return {
      dir,
      ca: await read("ca.crt"),
      caFile: `${dir}/ca.crt`,
      cert: await read("srv.crt"),
      key: await read("srv.key"),
      [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
    };
  } catch (err) {
    await Deno.remove(dir, { recursive: true });
    throw err;
  }
}
