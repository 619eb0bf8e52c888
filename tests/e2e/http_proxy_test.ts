/**
 * relay-sender http-proxy with real clients: curl `-x` (plain http, CONNECT with --proxytunnel, an
 * https target, proxy credentials, refusals) and git cloning a dumb-http repository through
 * `http_proxy`, npm reading a registry through `--proxy`, all against local servers behind the
 * listener.
 */
import assert from "node:assert/strict";
import { makeTestCerts, opensslAvailable } from "../helpers/certs.ts";
import {
  type BoundProc,
  logAttr,
  type RelayServer,
  run,
  spawnCli,
  startListener,
  startRelayServer,
} from "../helpers/proc.ts";
import { httpBody, startHttpServer } from "../helpers/servers.ts";

const works = (cmd: string, args: string[]) =>
  run(cmd, args).then((r) => r.code === 0, () => false);
const curlAvailable = await works("curl", ["--version"]);
const gitAvailable = await works("git", ["--version"]);
const npmAvailable = await works("npm", ["--version"]);

/** The environment of a client that must use the proxy even for loopback targets. */
const USE_PROXY = { NO_PROXY: "", no_proxy: "" };

/** `aztunnel relay-sender http-proxy -b 127.0.0.1:0 [args]`, ready once it logged its address. */
async function startHttpProxy(
  relay: RelayServer,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<BoundProc> {
  const proc = spawnCli(
    [
      "--log-level",
      "debug",
      "relay-sender",
      "http-proxy",
      "--relay",
      relay.url,
      "--hyco",
      "e2e",
      "-b",
      "127.0.0.1:0",
      ...args,
    ],
    { env: { ...relay.env, ...env }, name: "http-proxy" },
  );
  try {
    const bind = logAttr((await proc.waitForLine(/http-proxy listening/)).input ?? "", "bind");
    const port = Number(bind?.slice(bind.lastIndexOf(":") + 1));
    return {
      proc,
      port,
      addr: bind ?? "",
      [Symbol.asyncDispose]: () => proc[Symbol.asyncDispose](),
    };
  } catch (err) {
    await proc.kill("SIGKILL");
    throw err;
  }
}

/** curl through the proxy at `port`; `args` end with the URL. */
function curl(port: number, args: string[]) {
  return run("curl", ["-sS", "--max-time", "20", "-x", `http://127.0.0.1:${port}`, ...args], {
    env: USE_PROXY,
  });
}

Deno.test({
  name: "http-proxy: curl -x fetches plain http, and through CONNECT with --proxytunnel",
  ignore: !curlAvailable,
  async fn() {
    await using http = startHttpServer();
    await using relay = await startRelayServer();
    await using listener = await startListener(relay, { allow: ["127.0.0.1:*", "localhost:*"] });
    await using proxy = await startHttpProxy(relay);

    const plain = await curl(proxy.port, [`http://localhost:${http.port}/plain`]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(plain.text, httpBody("/plain"));
    await listener.waitForLine(
      new RegExp(`msg="connection requested".* target=localhost:${http.port}`),
    );

    const tunnelled = await curl(proxy.port, ["-p", `http://127.0.0.1:${http.port}/tunnel`]);
    assert.equal(tunnelled.code, 0, tunnelled.stderr);
    assert.equal(tunnelled.text, httpBody("/tunnel"));
    assert.equal(http.served, 2);
  },
});

Deno.test({
  name: "http-proxy: curl reaches an https target through CONNECT (HTTPS_PROXY's path)",
  ignore: !curlAvailable || !opensslAvailable,
  async fn() {
    await using certs = await makeTestCerts();
    await using https = Deno.serve(
      { hostname: "127.0.0.1", port: 0, cert: certs.cert, key: certs.key, onListen: () => {} },
      (req) => new Response(`secure ${new URL(req.url).pathname}\n`),
    );
    const port = (https.addr as Deno.NetAddr).port;
    await using relay = await startRelayServer();
    await using _listener = await startListener(relay, { allow: ["localhost:*"] });
    await using proxy = await startHttpProxy(relay);
    const r = await run(
      "curl",
      ["-sS", "--max-time", "20", "--cacert", certs.caFile, `https://localhost:${port}/tls`],
      { env: { ...USE_PROXY, HTTPS_PROXY: `http://127.0.0.1:${proxy.port}` } },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.text, "secure /tls\n");
    await proxy.proc.waitForLine(
      new RegExp(`msg="listener accepted connection".* target=localhost:${port}`),
    );
  },
});

Deno.test({
  name: "http-proxy: refusals reach curl as statuses: 403 not allowed, 502 refused, 407 no auth",
  ignore: !curlAvailable,
  async fn() {
    await using relay = await startRelayServer();
    await using _listener = await startListener(relay, { allow: ["127.0.0.1:*"] });
    await using proxy = await startHttpProxy(relay, [], { AZTUNNEL_PROXY_AUTH: "ann:pw" });
    const status = async (args: string[]) => {
      const r = await curl(proxy.port, ["-o", "/dev/null", "-w", "%{http_code}", ...args]);
      return r.text;
    };
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const closedPort = closed.addr.port;
    closed.close();

    assert.equal(await status(["http://127.0.0.1:1/"]), "407");
    assert.ok(
      !proxy.proc.stderrLines.join("").includes("visible to other local"),
      "env: no warning",
    );
    assert.equal(await status(["-U", "ann:wrong", "http://127.0.0.1:1/"]), "407");
    assert.equal(await status(["-U", "ann:pw", "http://localhost:8080/"]), "403");
    assert.equal(await status(["-U", "ann:pw", `http://127.0.0.1:${closedPort}/`]), "502");
    const connect = await curl(proxy.port, ["-U", "ann:pw", "-p", "http://localhost:8080/"]);
    assert.notEqual(connect.code, 0);
    assert.match(connect.stderr, /CONNECT tunnel failed, response 403/);
  },
});

/** No user or system git config, no prompts. */
const GIT_ENV = {
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_CONFIG_GLOBAL: "/dev/null",
  GIT_TERMINAL_PROMPT: "0",
};

/** A bare repository with one commit, prepared for dumb http (`update-server-info`). */
async function makeDumbRepo(root: string): Promise<string> {
  const git = async (cwd: string, ...args: string[]) => {
    const r = await run("git", ["-C", cwd, ...args], { env: GIT_ENV });
    assert.equal(r.code, 0, `git ${args.join(" ")}: ${r.stderr}`);
  };
  const work = `${root}/work`;
  await Deno.mkdir(work);
  await git(work, "init", "-q", "-b", "main");
  await Deno.writeTextFile(`${work}/README`, "cloned through the relay\n");
  await git(work, "add", "README");
  await git(work, "-c", "user.name=e2e", "-c", "user.email=e2e@example", "commit", "-qm", "one");
  await git(root, "clone", "-q", "--bare", work, `${root}/srv/repo.git`);
  await git(`${root}/srv/repo.git`, "update-server-info");
  return `${root}/srv`;
}

/** Static files under `root`, as a dumb-http git server needs. */
function serveFiles(root: string) {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    if (path.includes("..")) return new Response("bad path", { status: 400 });
    try {
      return new Response(await Deno.readFile(`${root}${path}`));
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
}

Deno.test({
  name: "http-proxy: git clones a dumb-http repository through http_proxy",
  ignore: !gitAvailable,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "aztunnel_git_" });
    try {
      await using files = serveFiles(await makeDumbRepo(root));
      const port = (files.addr as Deno.NetAddr).port;
      await using relay = await startRelayServer();
      await using listener = await startListener(relay, { allow: ["127.0.0.1:*"] });
      await using proxy = await startHttpProxy(relay);
      const r = await run(
        "git",
        ["clone", "-q", `http://127.0.0.1:${port}/repo.git`, `${root}/clone`],
        { env: { ...GIT_ENV, ...USE_PROXY, http_proxy: `http://127.0.0.1:${proxy.port}` } },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await Deno.readTextFile(`${root}/clone/README`), "cloned through the relay\n");
      await listener.waitForLine(
        new RegExp(`msg="connection requested".* target=127\\.0\\.0\\.1:${port}`),
      );
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "http-proxy: npm reads package metadata from a registry through --proxy",
  ignore: !npmAvailable,
  async fn() {
    await using registry = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      () =>
        Response.json({
          name: "demo-pkg",
          "dist-tags": { latest: "1.2.3" },
          versions: { "1.2.3": { name: "demo-pkg", version: "1.2.3" } },
        }),
    );
    const port = (registry.addr as Deno.NetAddr).port;
    await using relay = await startRelayServer();
    await using listener = await startListener(relay, { allow: ["127.0.0.1:*"] });
    await using proxy = await startHttpProxy(relay);
    const cache = await Deno.makeTempDir({ prefix: "aztunnel_npm_" });
    try {
      const r = await run("npm", [
        "view",
        "demo-pkg",
        "version",
        `--registry=http://127.0.0.1:${port}/`,
        `--proxy=http://127.0.0.1:${proxy.port}`,
        "--noproxy=",
        `--cache=${cache}`,
      ], { env: USE_PROXY, deadlineMs: 60_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.text.trim(), "1.2.3");
      await listener.waitForLine(
        new RegExp(`msg="connection requested".* target=127\\.0\\.0\\.1:${port}`),
      );
    } finally {
      await Deno.remove(cache, { recursive: true });
    }
  },
});

Deno.test("http-proxy: --proxy-auth as a flag warns that ps shows it and never logs the password", async () => {
  await using relay = await startRelayServer();
  await using proxy = await startHttpProxy(relay, ["--proxy-auth", "ann:pw"]);
  await proxy.proc.waitForLine(
    /level=WARN msg="--proxy-auth on the command line is visible to other local users \(ps\); use AZTUNNEL_PROXY_AUTH or --proxy-auth-file"/,
  );
  assert.ok(!proxy.proc.stderrLines.join("").includes("ann:pw"), "the password is never logged");
});
