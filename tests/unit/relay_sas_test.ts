import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createSasToken, parseSasToken, verifySasSignature } from "../../lib/relay/sas.ts";
import { AztunnelError } from "../../lib/errors.ts";

const RESOURCE = "https://MyNS.servicebus.windows.net/MyHC";
const KEY = "s3cr3t+Key/=";

/** Go's QueryEscape for the characters base64 and a resource URI can hold. */
function goEscape(s: string): string {
  return s.replace(/[^A-Za-z0-9\-_.~ ]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase())
    .replaceAll(" ", "+");
}

Deno.test("createSasToken produces the exact Go token", async () => {
  const token = await createSasToken(RESOURCE, "Root Key", KEY, 1_700_000_000);
  // Computed independently with Python's hmac + urllib.parse.quote_plus.
  assert.equal(
    token,
    "SharedAccessSignature sr=https%3A%2F%2Fmyns.servicebus.windows.net%2Fmyhc" +
      "&sig=%2BRImEbmh%2FQMtUFJn8tL4eMNQKz8Q%2BfiXPDoa%2FVfdiC4%3D&se=1700000000&skn=Root+Key",
  );
});

Deno.test("createSasToken signs the escaped lowercase sr with the key's UTF-8 bytes", async () => {
  const se = 1_800_000_123;
  const key = "clé-ünïcode"; // must not be base64-decoded or latin-1 encoded
  const sr = goEscape(RESOURCE.toLowerCase());
  const sig = createHmac("sha256", Buffer.from(key, "utf8")).update(`${sr}\n${se}`).digest(
    "base64",
  );
  const want = `SharedAccessSignature sr=${sr}&sig=${
    goEscape(sig)
  }&se=${se}&skn=RootManageSharedAccessKey`;
  assert.equal(await createSasToken(RESOURCE, "RootManageSharedAccessKey", key, se), want);
});

Deno.test("createSasToken floors fractional expiry and refuses an empty key", async () => {
  const t = await createSasToken(RESOURCE, "k", "v", 1000.9);
  assert.match(t, /&se=1000&/);
  await assert.rejects(
    createSasToken(RESOURCE, "k", "", 1000),
    (e: unknown) => e instanceof AztunnelError && e.code === "sas_invalid",
  );
});

Deno.test("parseSasToken returns raw sr/se and decoded sig/skn, any order", async () => {
  const token = await createSasToken(RESOURCE, "Root Key", KEY, 1_700_000_000);
  assert.deepEqual(parseSasToken(token), {
    sr: "https%3A%2F%2Fmyns.servicebus.windows.net%2Fmyhc",
    sig: "+RImEbmh/QMtUFJn8tL4eMNQKz8Q+fiXPDoa/VfdiC4=",
    se: "1700000000",
    skn: "Root+Key",
  });
  assert.deepEqual(
    parseSasToken("SharedAccessSignature sig=a%2Bb&se=5&skn=n&sr=http%3a%2f%2fx%2fy"),
    { sr: "http%3a%2f%2fx%2fy", sig: "a+b", se: "5", skn: "n" },
  );
  // Python's sample leaves `/` in sig unescaped; Node leaves `+`: both decode to the same base64.
  assert.equal(parseSasToken("SharedAccessSignature sr=x&sig=a/b+c=&se=5&skn=n")?.sig, "a/b+c=");
});

Deno.test("parseSasToken rejects malformed tokens", () => {
  const bad = [
    "",
    "Bearer eyJ.x.y",
    "SharedAccessSignature",
    "SharedAccessSignature sr=x&sig=y&se=1",
    "SharedAccessSignature sr=x&sig=y&skn=k",
    "SharedAccessSignature sr=x&se=1&skn=k",
    "SharedAccessSignature sig=y&se=1&skn=k",
    "SharedAccessSignature sr=x&sig=y&se=soon&skn=k",
    "SharedAccessSignature sr=x&sig=y&se=1&skn=k&sr=z",
    "SharedAccessSignature sr=x&sig=%ZZ&se=1&skn=k",
    "SharedAccessSignature sr=x&sig=y&se=1&skn=k&junk",
    "SharedAccessSignature sr=&sig=y&se=1&skn=k",
    "sharedaccesssignature sr=x&sig=y&se=1&skn=k",
  ];
  for (const t of bad) assert.equal(parseSasToken(t), null, t);
});

Deno.test("verifySasSignature accepts our tokens and other clients' encodings", async () => {
  const token = await createSasToken(RESOURCE, "Root Key", KEY, 1_700_000_000);
  const fields = parseSasToken(token)!;
  assert.equal(await verifySasSignature(fields, KEY), true);
  assert.equal(await verifySasSignature(fields, KEY + "x"), false);
  assert.equal(await verifySasSignature(fields, ""), false);
  assert.equal(await verifySasSignature({ ...fields, se: "1700000001" }, KEY), false);
  assert.equal(await verifySasSignature({ ...fields, sig: fields.sig.slice(1) }, KEY), false);
  assert.equal(await verifySasSignature({ ...fields, sig: "" }, KEY), false);

  // A .NET-style token: uppercase http scheme kept, lowercase hex, trailing slash — signed as is.
  const sr = "http%3a%2f%2fMyNS.servicebus.windows.net%2fMyHC%2f";
  const sig = createHmac("sha256", KEY).update(`${sr}\n42`).digest("base64");
  const dotnet = parseSasToken(
    `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=42&skn=Root`,
  )!;
  assert.equal(await verifySasSignature(dotnet, KEY), true);
});
