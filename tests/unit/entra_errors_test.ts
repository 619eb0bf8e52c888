import assert from "node:assert/strict";
// A static import is fine in a test: we want the library's real error classes.
import { AggregateAuthenticationError, CredentialUnavailableError } from "@azure/identity";
import { entraError, RELAY_FIX_HINT, summarizeCredentialError } from "../../lib/relay/entra.ts";
import { AztunnelError } from "../../lib/errors.ts";

/** The six messages DefaultAzureCredential 4.14 produced on a machine with nothing configured. */
const CHAIN = [
  "EnvironmentCredential is unavailable. No underlying credential could be used. To troubleshoot, visit https://aka.ms/azsdk/js/identity/environmentcredential/troubleshoot.",
  'ManagedIdentityCredential: Authentication failed. Message client_error: Error(s): Not Available - Timestamp: Not Available - Description: A client error occured.\nHttp status code: 403\nHttp status message: resolve_deny: denied destination\nHeaders: {"server":"keryx"} - Correlation ID: Not Available - Trace ID: Not Available',
  "Visual Studio Code Authentication is not available. Ensure you have have Azure Resources Extension installed in VS Code, signed into Azure via VS Code, installed the @azure/identity-vscode package, and properly configured the extension.",
  "Azure CLI could not be found. Please visit https://aka.ms/azure-cli for installation instructions and then, once installed, authenticate to your Azure account using 'az login'.",
  "Error: Unable to execute PowerShell. Ensure that it is installed in your system. To troubleshoot, visit https://aka.ms/azsdk/js/identity/powershellcredential/troubleshoot.",
  "Azure Developer CLI couldn't be found. To mitigate this issue, see the troubleshooting guidelines at https://aka.ms/azsdk/js/identity/azdevclicredential/troubleshoot.",
];

function aggregate(messages: string[]): AggregateAuthenticationError {
  return new AggregateAuthenticationError(
    messages.map((m) => new CredentialUnavailableError(m)),
    "ChainedTokenCredential authentication failed.",
  );
}

Deno.test("the aggregate chain error becomes one line naming each credential tried", () => {
  const summary = summarizeCredentialError(aggregate(CHAIN));
  assert.equal(
    summary,
    "tried: environment: not configured (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET); " +
      "managed identity: HTTP 403 resolve_deny: denied destination; VS Code: not available; " +
      "Azure CLI: az not installed; Azure PowerShell: not installed; " +
      "Azure Developer CLI: azd not installed",
  );
  assert.ok(!summary.includes("\n"));
});

Deno.test("managed identity without an HTTP status keeps MSAL's code and description", () => {
  const msg =
    "ManagedIdentityCredential: Authentication failed. Message invalid_request: Error(s): Not Available - Timestamp: Not Available - Description: bad resource - Correlation ID: Not Available - Trace ID: Not Available";
  assert.equal(
    summarizeCredentialError(aggregate([msg])),
    "tried: managed identity: invalid_request: bad resource",
  );
});

Deno.test("az present but signed out says so", () => {
  const msg =
    "Please run 'az login' from a command prompt to authenticate before using this credential.";
  assert.equal(
    summarizeCredentialError(new CredentialUnavailableError(msg)),
    "Azure CLI: not signed in (run `az login`)",
  );
});

Deno.test("an unknown error keeps its first line, without links, clipped", () => {
  const long = `${"x".repeat(300)}\nsecond line`;
  const s = summarizeCredentialError(new Error(long));
  assert.equal(s.length, 120);
  assert.ok(s.endsWith("…"));
  assert.equal(
    summarizeCredentialError(new Error("Boom. To troubleshoot, visit https://aka.ms/x.")),
    "Boom.",
  );
});

Deno.test("entraError: code auth_unavailable, scope, summary and the fix, one line", () => {
  const err = entraError(aggregate(CHAIN), "https://relay.azure.net/.default", RELAY_FIX_HINT);
  assert.ok(err instanceof AztunnelError);
  assert.equal(err.code, "auth_unavailable");
  assert.ok(!err.message.includes("\n"));
  assert.match(
    err.message,
    /^Entra ID authentication failed: no credential could get a token for https:\/\/relay\.azure\.net\/\.default \(tried: /,
  );
  assert.match(err.message, /AZTUNNEL_KEY_NAME and AZTUNNEL_KEY/);
  assert.match(err.message, /`az login`/);
  assert.match(err.message, /Azure Relay Listener/);
  assert.match(err.message, /Azure Relay Sender/);
});
