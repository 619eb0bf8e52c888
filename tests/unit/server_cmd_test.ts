import assert from "node:assert/strict";
import { Command } from "@commander-js/extra-typings";
import { register } from "../../cmd/relay_server.ts";
import { parseSize } from "../../lib/server/flags.ts";
import { AztunnelError, UsageError } from "../../lib/errors.ts";
import { configureLogging, resetLogging } from "../../lib/observe/log.ts";
import { createSasToken } from "../../lib/relay/sas.ts";
import { connectWebSocket } from "../../lib/ws/mod.ts";
import { opensslAvailable } from "../helpers/certs.ts";
import { signHs256Jwt } from "../helpers/fake_token_endpoint.ts";
import { withLogs } from "../helpers/logs.ts";
import { expectStatus } from "./server_helpers_test.ts";

function program(): Command {
  const p = new Command("aztunnel").exitOverride();
  register(p);
  for (const c of p.commands) c.exitOverride();
  return p;
}

async function run(...args: string[]): Promise<void> {
  await program().parseAsync(args, { from: "user" });
}

Deno.test("parseSize accepts bytes and binary/decimal units", () => {
  assert.equal(parseSize("1048576", "--x"), 1048576);
  assert.equal(parseSize("16MiB", "--x"), 16 * 1024 * 1024);
  assert.equal(parseSize("512 kib", "--x"), 512 * 1024);
  assert.equal(parseSize("1MB", "--x"), 1_000_000);
  assert.equal(parseSize("1.5KiB", "--x"), 1536);
  for (const bad of ["", "0", "-1", "1XB", "MiB", "1e9"]) {
    assert.throws(() => parseSize(bad, "--x"), UsageError, bad);
  }
});

Deno.test("relay-server: bad flag values are usage errors", async () => {
  const cases: [string[], RegExp][] = [
    [["--bind", "nope"], /invalid --bind/],
    [["--bind", "0.0.0.0:0"], /--public-url is required/],
    [["--public-url", "ftp://x"], /invalid --public-url/],
    [["--tls-cert", "a.pem"], /must be given together/],
    [["--tls-cert", "/nonexistent/a.pem", "--tls-key", "/nonexistent/b.pem"], /--tls-cert/],
    [["--max-listeners", "0"], /--max-listeners/],
    [["--max-listeners", "x"], /--max-listeners/],
    [["--rendezvous-timeout", "5"], /--rendezvous-timeout/],
    [["--rendezvous-timeout", "0s"], /--rendezvous-timeout/],
    [["--latency", "-1s"], /--latency/],
    [["--rendezvous-idle-timeout", "0s"], /--rendezvous-idle-timeout must be positive/],
    [["--rendezvous-idle-timeout", "soon"], /--rendezvous-idle-timeout/],
    [["--rendezvous-url", "http://127.0.0.2:0"], /invalid --rendezvous-url.*ws or wss/],
    [["--rendezvous-url", "wss://127.0.0.2:0"], /invalid --rendezvous-url.*--tls-cert/],
    [["--rendezvous-url", "ws://127.0.0.2:0/x"], /invalid --rendezvous-url.*only scheme/],
    [["--max-message-size", "big"], /--max-message-size/],
    [["--sas-policy", "nokey"], /--sas-policy/],
    [["--hyco", "/"], /--hyco/],
    [["--hyco", "a b"], /^invalid --hyco "a b": must not contain spaces or control characters$/],
    [["--hyco", "x/../y"], /^invalid --hyco "x\/\.\.\/y": must not contain "\.\."$/],
    [["--latency", "600h"], /^invalid --latency "600h": must be at most 596h31m23\.647s$/],
    [
      ["--rendezvous-timeout", "2147483648ms"],
      /^invalid --rendezvous-timeout "2147483648ms": must be at most 596h31m23\.647s$/,
    ],
    [
      ["--sas-policy", "foo=bar:Listen,Bogus"],
      /^invalid --sas-policy "foo=\*\*\*": unknown right "Bogus" \(expected Listen, Send or Manage\)$/,
    ],
  ];
  for (const [args, why] of cases) {
    await assert.rejects(
      run("relay-server", "--bind", "127.0.0.1:0", "--sas-policy", "a=b", ...args),
      (e: Error) => e instanceof UsageError && why.test(e.message),
      args.join(" "),
    );
  }
});

/** Captures INFO logs; `listening` resolves with the URL relay-server logs once it listens. */
async function captureLogs(): Promise<{ lines: string[]; listening: Promise<string> }> {
  const lines: string[] = [];
  const { promise: listening, resolve } = Promise.withResolvers<string>();
  await configureLogging({
    level: "info",
    write: (l) => {
      lines.push(l);
      const m = / url=(ws:\/\/\S+)/.exec(l);
      if (l.includes('msg="relay-server listening"') && m) resolve(m[1]);
    },
  });
  return { lines, listening };
}

Deno.test("relay-server: runs until SIGTERM, then returns", async () => {
  const { lines, listening } = await captureLogs();
  try {
    const running = run(
      "relay-server",
      "--bind",
      "127.0.0.1:0",
      "--sas-policy",
      "a=b:Listen",
      "--hyco",
      "one",
      "--hyco",
      "two",
      "--latency",
      "1ms",
      "--rendezvous-url",
      "ws://127.0.0.2:0",
      "--rendezvous-idle-timeout",
      "90s",
    );
    const url = await listening;
    const health = await fetch(`${url.replace("ws://", "http://")}/healthz`);
    assert.equal(await health.text(), "ok");
    const line = lines.find((l) => l.includes('msg="relay-server listening"')) ?? "";
    const rendezvous = /rendezvous_url=ws:\/\/(127\.0\.0\.2:\d+)/.exec(line);
    assert.ok(rendezvous, line);
    const atGateway = await fetch(`http://${rendezvous[1]}/healthz`);
    assert.equal(await atGateway.text(), "ok");
    Deno.kill(Deno.pid, "SIGTERM");
    await running;
    assert.ok(lines.some((l) => l.includes('msg="relay-server stopped"')));
  } finally {
    await resetLogging();
  }
});

/** The error `relay-server <args>` fails with. */
async function failure(...args: string[]): Promise<Error> {
  try {
    await run("relay-server", ...args);
  } catch (err) {
    return err as Error;
  }
  throw new assert.AssertionError({ message: `relay-server ${args.join(" ")} did not fail` });
}

/** Asserts `relay-server <args>` fails with a UsageError whose message is exactly `message`. */
async function usage(args: string[], message: string): Promise<void> {
  const err = await failure("--bind", "127.0.0.1:0", ...args);
  assert.ok(err instanceof UsageError, `${args.join(" ")}: ${err}`);
  assert.equal(err.message, message);
}

/** Two self-signed pairs (RSA and EC) and a few broken files in a fresh directory. */
async function tlsFiles(): Promise<Record<string, string> & { dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "aztunnel-tls-" });
  const openssl = async (...args: string[]) => {
    const out = await new Deno.Command("openssl", { args, stdout: "null", stderr: "piped" })
      .output();
    if (!out.success) throw new Error(`openssl: ${new TextDecoder().decode(out.stderr)}`);
  };
  const pair = (name: string, ...keyArgs: string[]) =>
    openssl(
      "req",
      "-x509",
      "-newkey",
      ...keyArgs,
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-keyout",
      `${dir}/${name}.key`,
      "-out",
      `${dir}/${name}.crt`,
    );
  await pair("rsa", "rsa:2048");
  await pair("ec", "ec", "-pkeyopt", "ec_paramgen_curve:P-256");
  await Deno.writeTextFile(
    `${dir}/garbage.crt`,
    "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
  );
  await Deno.writeTextFile(
    `${dir}/encrypted.key`,
    "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
  );
  return {
    dir,
    cert: `${dir}/rsa.crt`,
    key: `${dir}/rsa.key`,
    otherKey: `${dir}/ec.key`,
    garbage: `${dir}/garbage.crt`,
    encrypted: `${dir}/encrypted.key`,
  };
}

Deno.test({
  name: "relay-server: a bad --tls-cert/--tls-key is a usage error naming the file" +
    (opensslAvailable ? "" : " (ignored: openssl not found)"),
  ignore: !opensslAvailable,
  async fn() {
    const f = await tlsFiles();
    try {
      const tls = (cert: string, key: string) => ["--tls-cert", cert, "--tls-key", key];
      const missing = `${f.dir}/missing.pem`;
      const err = await failure("--bind", "127.0.0.1:0", ...tls(missing, f.key));
      assert.ok(err instanceof UsageError);
      assert.match(err.message, new RegExp(`^--tls-cert ${missing}: No such file or directory`));
      await usage(tls(f.key, f.key), `--tls-cert ${f.key}: no PEM certificate in file`);
      await usage(tls(f.cert, f.cert), `--tls-key ${f.cert}: no PEM private key in file`);
      await usage(
        tls(f.cert, f.encrypted),
        `--tls-key ${f.encrypted}: encrypted private keys are not supported`,
      );
      await usage(
        tls(f.garbage, f.key),
        `--tls-cert ${f.garbage}: invalid peer certificate: BadEncoding`,
      );
      await usage(
        tls(f.cert, f.otherKey),
        `--tls-key ${f.otherKey} does not match --tls-cert ${f.cert}: keys may not be consistent: KeyMismatch`,
      );
      // A matching pair gets past all of that: only the busy address stops it.
      const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      try {
        const port = busy.addr.port;
        const bound = await failure(
          "--bind",
          `127.0.0.1:${port}`,
          "--sas-policy",
          "a=b",
          ...tls(f.cert, f.key),
        );
        assert.ok(bound instanceof AztunnelError && !(bound instanceof UsageError), String(bound));
        assert.equal(bound.code, "listen_failed");
      } finally {
        busy.close();
      }
    } finally {
      await Deno.remove(f.dir, { recursive: true });
    }
  },
});

Deno.test("relay-server: a busy --bind fails (not a usage error) and names the address", async () => {
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = busy.addr.port;
    const err = await failure("--bind", `127.0.0.1:${port}`, "--sas-policy", "a=b");
    assert.ok(err instanceof AztunnelError && !(err instanceof UsageError), String(err));
    assert.equal(err.code, "listen_failed");
    assert.ok(err.cause instanceof Deno.errors.AddrInUse, String(err.cause));
    assert.equal(err.message, `listen 127.0.0.1:${port}: ${(err.cause as Error).message}`);
  } finally {
    busy.close();
  }
});

Deno.test("relay-server: secrets on argv get a WARN; from files they do not", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aztunnel-secrets-" });
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    await Deno.writeTextFile(`${dir}/policies`, "a=b\n");
    await Deno.writeTextFile(`${dir}/jwt`, "secret\n");
    // The busy address ends each run right after the checks and warnings.
    const bind = ["--bind", `127.0.0.1:${busy.addr.port}`];
    const onArgv = await withLogs(async (lines) => {
      await failure(...bind, "--sas-policy", "a=b", "--entra-jwt-key", "secret");
      return lines;
    }, "info");
    assert.deepEqual(onArgv.map((l) => l.replace(/^time=\S+ /, "")), [
      'level=WARN msg="secret passed on the command line is visible to other local users; prefer --sas-policy-file or AZTUNNEL_RELAY_SAS_POLICIES" flag=--sas-policy\n',
      'level=WARN msg="secret passed on the command line is visible to other local users; prefer --entra-jwt-key-file or AZTUNNEL_RELAY_ENTRA_JWT_KEY" flag=--entra-jwt-key\n',
    ]);
    const fromFiles = await withLogs(async (lines) => {
      await failure(
        ...bind,
        "--sas-policy-file",
        `${dir}/policies`,
        "--entra-jwt-key-file",
        `${dir}/jwt`,
      );
      return lines;
    }, "info");
    assert.deepEqual(fromFiles, []);
  } finally {
    busy.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("relay-server: --sas-policy-file and --entra-jwt-key-file errors name the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aztunnel-secrets-" });
  try {
    const write = async (name: string, text: string) => {
      await Deno.writeTextFile(`${dir}/${name}`, text);
      return `${dir}/${name}`;
    };
    const bad = await write("bad", "# rules\nok=k1\nbroken=k2:Listen,Sned\n");
    await usage(
      ["--sas-policy-file", bad],
      `invalid --sas-policy-file ${bad}:3 "broken=***": unknown right "Sned" (expected Listen, Send or Manage)`,
    );
    const comments = await write("comments", "# nothing yet\n\n");
    await usage(
      ["--sas-policy-file", comments],
      `--sas-policy-file ${comments}: no policy in file`,
    );
    const dup = await write("dup", "a=k1\n");
    await usage(
      ["--sas-policy", "a=k2", "--sas-policy-file", dup],
      'duplicate SAS policy name "a"',
    );
    const empty = await write("empty", "\n");
    await usage(
      ["--entra-jwt-key-file", empty],
      `--entra-jwt-key-file ${empty}: the file is empty`,
    );
    const jwt = await write("jwt", "s\n");
    await usage(
      ["--entra-jwt-key", "s", "--entra-jwt-key-file", jwt],
      "--entra-jwt-key and --entra-jwt-key-file (or their environment variables) exclude each other",
    );
    const err = await failure("--bind", "127.0.0.1:0", "--sas-policy-file", `${dir}/none`);
    assert.ok(err instanceof UsageError);
    assert.match(err.message, new RegExp(`^--sas-policy-file ${dir}/none: No such file`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("relay-server: policies and the JWT secret from files are the ones in force", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aztunnel-secrets-" });
  const { lines, listening } = await captureLogs();
  try {
    await Deno.writeTextFile(`${dir}/policies`, "# only listeners\nlistenonly=k+1/=:listen\n");
    await Deno.writeTextFile(`${dir}/jwt`, "jwt-secret\r\n");
    const running = run(
      "relay-server",
      "--bind",
      "127.0.0.1:0",
      "--sas-policy-file",
      `${dir}/policies`,
      "--entra-jwt-key-file",
      `${dir}/jwt`,
    );
    try {
      const url = await Promise.race([
        listening,
        running.then(() => Promise.reject(new Error(`ended early:\n${lines.join("")}`))),
      ]);
      const sas = (path: string) =>
        createSasToken(`https://127.0.0.1/${path}`, "listenonly", "k+1/=", Date.now() / 1000 + 600);
      const dial = async (action: string, token: string) =>
        await connectWebSocket(
          `${url}/$hc/h?sb-hc-action=${action}&sb-hc-token=${encodeURIComponent(token)}`,
          { proxy: "none" },
        );
      const control = await dial("listen", await sas("h"));
      await control.close();
      // The file gave Listen only.
      await expectStatus(dial("connect", await sas("h")), 403);
      // The trailing newline of the secret file is not part of the secret.
      const jwt = (secret: string) =>
        signHs256Jwt(
          {
            exp: Math.floor(Date.now() / 1000) + 600,
            aud: "https://relay.azure.net",
            roles: ["Listen"],
          },
          secret,
        );
      const viaJwt = await dial("listen", await jwt("jwt-secret"));
      await viaJwt.close();
      await expectStatus(dial("listen", await jwt("jwt-secret\r\n")), 401);
    } finally {
      Deno.kill(Deno.pid, "SIGTERM");
      await running;
    }
    assert.ok(!lines.some((l) => l.includes("level=WARN")), lines.join(""));
  } finally {
    await resetLogging();
    await Deno.remove(dir, { recursive: true });
  }
});
