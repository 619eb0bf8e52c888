/** SAS authorization rules of the local relay (`--sas-policy NAME=KEY[:Listen,Send,Manage]`). */
import { UsageError } from "../errors.ts";

export type Right = "Listen" | "Send" | "Manage";
export const ALL_RIGHTS: readonly Right[] = ["Listen", "Send", "Manage"];

export interface SasPolicy {
  readonly name: string;
  readonly key: string;
  readonly rights: readonly Right[];
}

/** .NET's client-side limit for key names and keys. */
const MAX_LEN = 256;

/**
 * Parses `NAME=KEY[:Listen,Send,Manage]`. The rights suffix is the text after the last `:` when every
 * comma-separated word in it is a right name; otherwise the whole value is the key (keys may hold `:`).
 */
export function parseSasPolicy(text: string): SasPolicy {
  const eq = text.indexOf("=");
  if (eq <= 0) {
    throw new UsageError(
      `invalid --sas-policy "${redactPolicy(text)}": expected NAME=KEY[:Listen,Send,Manage]`,
    );
  }
  const name = text.slice(0, eq);
  let key = text.slice(eq + 1);
  let rights: Right[] = [...ALL_RIGHTS];
  const colon = key.lastIndexOf(":");
  if (colon >= 0) {
    const parsed = parseRights(key.slice(colon + 1));
    if (parsed) {
      rights = parsed;
      key = key.slice(0, colon);
    }
  }
  const bad = (why: string) =>
    new UsageError(`invalid --sas-policy "${redactPolicy(text)}": ${why}`);
  if (key === "") throw bad("empty key");
  if (name.length > MAX_LEN || key.length > MAX_LEN) {
    throw bad(`name and key are limited to ${MAX_LEN} characters`);
  }
  if (/[\s&]/.test(name)) throw bad("the name must not contain spaces or '&'");
  return { name, key, rights };
}

function parseRights(text: string): Right[] | undefined {
  if (text.trim() === "") return undefined;
  const out: Right[] = [];
  for (const word of text.split(",")) {
    const right = ALL_RIGHTS.find((r) => r.toLowerCase() === word.trim().toLowerCase());
    if (!right) return undefined;
    if (!out.includes(right)) out.push(right);
  }
  return out;
}

/** `NAME=***` so a usage error never echoes a key. */
function redactPolicy(text: string): string {
  const eq = text.indexOf("=");
  return eq < 0 ? text : `${text.slice(0, eq)}=***`;
}

/** Manage implies Listen and Send. */
export function hasRight(rights: readonly Right[], needed: "Listen" | "Send"): boolean {
  return rights.includes("Manage") || rights.includes(needed);
}

export interface PolicyResolution {
  readonly policies: SasPolicy[];
  /** Set when no policy was configured anywhere and a random one was made up. */
  readonly generated?: SasPolicy;
}

/**
 * Flags win; else `AZTUNNEL_KEY_NAME`/`AZTUNNEL_KEY` (all rights); else a random key the user is told
 * about. One of the two environment variables alone is a usage error (it is surely a mistake).
 */
export function resolvePolicies(
  flags: readonly string[],
  env: { get(name: string): string | undefined },
): PolicyResolution {
  if (flags.length > 0) {
    const policies = flags.map(parseSasPolicy);
    const seen = new Set<string>();
    for (const p of policies) {
      if (seen.has(p.name)) throw new UsageError(`duplicate --sas-policy name "${p.name}"`);
      seen.add(p.name);
    }
    return { policies };
  }
  const name = env.get("AZTUNNEL_KEY_NAME") ?? "";
  const key = env.get("AZTUNNEL_KEY") ?? "";
  if (name !== "" && key !== "") {
    return { policies: [{ name, key, rights: [...ALL_RIGHTS] }] };
  }
  if (name !== "" || key !== "") {
    throw new UsageError("AZTUNNEL_KEY_NAME and AZTUNNEL_KEY must be set together");
  }
  const generated: SasPolicy = {
    name: "RootManageSharedAccessKey",
    key: randomKey(),
    rights: [...ALL_RIGHTS],
  };
  return { policies: [generated], generated };
}

/** 32 random bytes in base64, the shape of an Azure SAS key. */
export function randomKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}
