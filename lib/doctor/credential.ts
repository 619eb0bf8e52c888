/**
 * Which relay credential the environment chose, and that it yields a token: the SAS key name (read
 * back from the token it signed), or Entra ID and whom the token was issued to (its claims; the
 * credential chain itself reports its pick only through @azure/identity's logger).
 */
import { decodeBase64Url } from "../crypto/base64.ts";
import { formatDuration } from "../duration.ts";
import { errorMessage } from "../errors.ts";
import { RELAY_FIX_HINT } from "../relay/entra.ts";
import { parseSasToken } from "../relay/sas.ts";
import type { Token, TokenProvider } from "../relay/token.ts";
import { type Check, fail, type Outcome, pass } from "./checks.ts";

export const CREDENTIAL_CHECK = "credential and token";

export function credentialCheck(
  tokens: TokenProvider,
  resourceUri: string,
  now: () => number = Date.now,
): Check {
  return {
    label: CREDENTIAL_CHECK,
    run: async (signal): Promise<Outcome> => {
      let token: Token;
      try {
        token = await tokens.getToken(resourceUri, signal);
      } catch (err) {
        return tokenFailure(tokens.kind, err);
      }
      // Whole minutes: a lifetime to the millisecond says nothing more and never reads the same.
      const minutes = Math.round(Math.max(0, token.expiresAt - now()) / 60_000);
      const validFor = `valid for ${formatDuration(minutes * 60_000)}`;
      if (tokens.kind === "sas") {
        const keyName = parseSasToken(token.token)?.skn ?? "?";
        return pass(`SAS key "${keyName}" (AZTUNNEL_KEY_NAME), token ${validFor}`);
      }
      return pass(
        `Entra ID (DefaultAzureCredential), token for ${identityOf(token.token)}, ${validFor}`,
      );
    },
  };
}

function tokenFailure(kind: TokenProvider["kind"], err: unknown): Outcome {
  if (kind === "sas") {
    return fail(`cannot sign a SAS token: ${errorMessage(err)}`, "check AZTUNNEL_KEY");
  }
  // The message lists every credential tried; its own "to fix" is the hint given on its own.
  const detail = errorMessage(err).replace(`; to fix: ${RELAY_FIX_HINT}`, "");
  return fail(`Entra ID: ${detail}`, RELAY_FIX_HINT);
}

/** Who a JWT names: user, managed identity or application, as far as its claims tell. */
export function identityOf(jwt: string): string {
  const part = jwt.split(".")[1];
  const bytes = part === undefined ? null : decodeBase64Url(part);
  let claims: Record<string, unknown> = {};
  try {
    if (bytes) claims = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    // Not JSON: an opaque token, described as such below.
  }
  const text = (k: string) => typeof claims[k] === "string" ? claims[k] as string : undefined;
  const user = text("upn") ?? text("preferred_username") ?? text("unique_name");
  if (user) return `user ${user}`;
  const mi = text("xms_mirid");
  if (mi) return `managed identity ${mi.slice(mi.lastIndexOf("/") + 1)}`;
  const app = text("appid") ?? text("azp");
  if (app) return `application ${app}`;
  const oid = text("oid");
  return oid ? `object ${oid}` : "an unnamed identity";
}
