/**
 * The relay credentials the environment names: a SAS key, else Entra. A module of its own so that
 * token.ts (which entra.ts builds on) never imports entra.ts: imports run one way.
 */
import { AztunnelError, errorCode, errorMessage, UsageError } from "../errors.ts";
import { SasTokenProvider, type TokenProvider } from "./token.ts";

/** Anything with `get(name)`: `Deno.env`, a `Map`, a test double. */
export interface EnvReader {
  get(name: string): string | undefined;
}

/** How a relay client authenticates, without the secret: what start-up lines show. */
export type RelayAuthMode =
  | { readonly kind: "sas"; readonly keyName: string }
  | { readonly kind: "entra" };

/**
 * SAS when both AZTUNNEL_KEY_NAME and AZTUNNEL_KEY are non-empty, Entra when neither is. One
 * without the other is a UsageError (relay-server's wording): it is surely a mistake, and falling
 * through to Entra would only fail later with a message about Entra.
 */
export function relayAuthMode(env: EnvReader): RelayAuthMode {
  const sas = sasCredentials(env);
  return sas ? { kind: "sas", keyName: sas.keyName } : { kind: "entra" };
}

/** `auth=sas key_name=…` or `auth=entra`, the attributes start-up lines carry. */
export function authLogAttrs(mode: RelayAuthMode): Record<string, string> {
  return mode.kind === "sas" ? { auth: "sas", key_name: mode.keyName } : { auth: "entra" };
}

/**
 * The provider `relayAuthMode(env)` names; Entra (DefaultAzureCredential) is loaded lazily so SAS
 * users never pay for @azure/identity.
 */
export async function tokenProviderFromEnv(env: EnvReader): Promise<TokenProvider> {
  const sas = sasCredentials(env);
  if (sas) return new SasTokenProvider(sas.keyName, sas.key);
  try {
    const { createEntraTokenProvider } = await import("./entra.ts");
    return await createEntraTokenProvider();
  } catch (err) {
    throw new AztunnelError(
      errorCode(err) ?? "entra_failed",
      `no SAS credentials found (AZTUNNEL_KEY_NAME/AZTUNNEL_KEY) and Entra auth failed: ${
        errorMessage(err)
      }`,
      { cause: err },
    );
  }
}

function sasCredentials(env: EnvReader): { keyName: string; key: string } | null {
  const keyName = env.get("AZTUNNEL_KEY_NAME") ?? "";
  const key = env.get("AZTUNNEL_KEY") ?? "";
  if (keyName !== "" && key !== "") return { keyName, key };
  if (keyName !== "" || key !== "") {
    throw new UsageError("AZTUNNEL_KEY_NAME and AZTUNNEL_KEY must be set together");
  }
  return null;
}
