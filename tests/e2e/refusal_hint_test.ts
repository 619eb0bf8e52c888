/** The sender says why the listener refused: not allowed (names are literal), refused, DNS. */
import assert from "node:assert/strict";
import { freePort, runCli, startListener, startRelayServer } from "../helpers/proc.ts";

Deno.test("refusals: the sender's WARN names the listener's reason with a hint", async () => {
  await using relay = await startRelayServer();
  await using _listener = await startListener(relay, {
    allow: ["127.0.0.1:*", "*.invalid:*"],
    args: ["--connect-timeout", "5s"],
  });
  const connect = (target: string) =>
    runCli(["relay-sender", "connect", "--relay", relay.url, "--hyco", "e2e", target], {
      env: relay.env,
    });
  const [notAllowed, refused, dns] = await Promise.all([
    connect(`localhost:${freePort()}`),
    connect(`127.0.0.1:${freePort()}`),
    connect("no-such-host.invalid:22"),
  ]);
  const cases: [typeof refused, string, RegExp][] = [
    [
      notAllowed,
      "not_allowed",
      /hint="the target is not on the listener's --allow list; host names are matched literally, without DNS/,
    ],
    [
      refused,
      "connection_refused",
      /hint="the listener reached the target host, but nothing listens on that port"/,
    ],
    [dns, "dns_not_found", /hint="the listener could not resolve the target's host name"/],
  ];
  for (const [r, code, hint] of cases) {
    assert.equal(r.code, 1, r.stderr);
    const line = r.stderr.split("\n").find((l) => l.includes('msg="listener refused connection"'));
    assert.ok(line, r.stderr);
    assert.match(line, new RegExp(`code=${code}`));
    assert.match(line, hint);
  }
});
