/** --tls-self-signed DIR is trusted only when it is ours and writable by us alone. */
import assert from "node:assert/strict";
import { UsageError } from "../../lib/errors.ts";
import { selfSignedTls } from "../../lib/server/self_signed.ts";

const unix = Deno.build.os !== "windows";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "aztunnel-selfsigned-dir-" });
  try {
    await fn(dir);
  } finally {
    await Deno.chmod(dir, 0o700).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "selfSignedTls dir: a world-writable directory is refused before anything is reused",
  ignore: !unix,
  async fn() {
    await withDir(async (dir) => {
      // A CA someone else could have planted: refused, and not replaced either.
      await selfSignedTls(dir, []);
      const planted = await Deno.readTextFile(`${dir}/ca.crt`);
      await Deno.chmod(dir, 0o777);
      await assert.rejects(
        () => selfSignedTls(dir, ["relay.test"]),
        (err) => err instanceof UsageError && /group or others write/.test(err.message),
      );
      assert.equal(await Deno.readTextFile(`${dir}/ca.crt`), planted);
      // Group-writable is as bad; readable by others is fine (ca.crt is public).
      await Deno.chmod(dir, 0o775);
      await assert.rejects(() => selfSignedTls(dir, []), UsageError);
      await Deno.chmod(dir, 0o755);
      assert.equal((await selfSignedTls(dir, [])).issued, "none");
    });
  },
});

Deno.test({
  name: "selfSignedTls dir: a ca.key others can read is refused",
  ignore: !unix,
  async fn() {
    await withDir(async (dir) => {
      await selfSignedTls(dir, []);
      await Deno.chmod(`${dir}/ca.key`, 0o644);
      await assert.rejects(
        () => selfSignedTls(dir, []),
        (err) => err instanceof UsageError && /ca\.key must be owned/.test(err.message),
      );
    });
  },
});

Deno.test("selfSignedTls dir: a fresh directory (made, or new and empty) works", async () => {
  await withDir(async (parent) => {
    assert.equal((await selfSignedTls(`${parent}/new/tls`, [])).issued, "ca");
    const empty = `${parent}/empty`;
    await Deno.mkdir(empty, { mode: 0o755 });
    await Deno.chmod(empty, 0o755);
    assert.equal((await selfSignedTls(empty, [])).issued, "ca");
  });
});
