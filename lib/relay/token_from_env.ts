/**
 * The relay credentials the environment names: a SAS key, else Entra. A module of its own so that
 * token.ts (which entra.ts builds on) never imports entra.ts: imports run one way.
 */
import { AztunnelError, errorCode, errorMessage } from "../errors.ts";
import { SasTokenProvider, type TokenProvider } from "./token.ts";

/** Anything with `get(name)`: `Deno.env`, a `Map`, a test double. */
export interface EnvReader {
  get(name: string): string | undefined;
}

/**
 * SAS when both AZTUNNEL_KEY_NAME and AZTUNNEL_KEY are non-empty, otherwise Entra
 * (DefaultAzureCredential), loaded lazily so SAS users never pay for @azure/identity.
 */
export async function tokenProviderFromEnv(env: EnvReader): Promise<TokenProvider> {
  const keyName = env.get("AZTUNNEL_KEY_NAME") ?? "";
  const key = env.get("AZTUNNEL_KEY") ?? "";
  if (keyName !== "" && key !== "") return new SasTokenProvider(keyName, key);
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
