/**
 * SAS authorization rules of the local relay (`NAME=KEY[:Listen,Send,Manage]` from `--sas-policy`,
 * `--sas-policy-file` or `AZTUNNEL_RELAY_SAS_POLICIES`).
 */
import { encodeBase64 } from "../crypto/base64.ts";
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
 * Parses `NAME=KEY[:Listen,Send,Manage]`. When the text after the last `:` is made of words, commas
 * and spaces, it is the rights suffix and every comma-separated word must name a right (so a typo such as `:Listen,Sned`
 * is an error, not part of the key). Azure keys are base64, which has no `:`; a key that does contain
 * one must therefore end with an explicit rights suffix (`NAME=a:b:Listen,Send,Manage`) unless the text
 * after its last `:` is not a word list (`a:b==`). `source` names where the text came from in errors.
 */
export function parseSasPolicy(text: string, source = "--sas-policy"): SasPolicy {
  const bad = (why: string) => new UsageError(`invalid ${source} "${redactPolicy(text)}": ${why}`);
  const eq = text.indexOf("=");
  if (eq <= 0) throw bad("expected NAME=KEY[:Listen,Send,Manage]");
  const name = text.slice(0, eq);
  let key = text.slice(eq + 1);
  let rights: Right[] = [...ALL_RIGHTS];
  const colon = key.lastIndexOf(":");
  if (colon >= 0 && RIGHTS_SUFFIX.test(key.slice(colon + 1))) {
    rights = parseRights(key.slice(colon + 1), bad);
    key = key.slice(0, colon);
  }
  if (key === "") throw bad("empty key");
  if (name.length > MAX_LEN || key.length > MAX_LEN) {
    throw bad(`name and key are limited to ${MAX_LEN} characters`);
  }
  if (/[\s&;]/.test(name)) throw bad("the name must not contain spaces, '&' or ';'");
  return { name, key, rights };
}

/**
 * What a rights suffix looks like, valid or not: words, commas and spaces. Loose on purpose, so that
 * `Listen,,Send` or `Listen,` is refused instead of silently becoming part of an all-rights key.
 */
const RIGHTS_SUFFIX = /^[\w\s,]*\w[\w\s,]*$/;

function parseRights(text: string, bad: (why: string) => UsageError): Right[] {
  const out: Right[] = [];
  for (const word of text.split(",").map((w) => w.trim())) {
    if (word === "") throw bad(`empty right in "${text.trim()}"`);
    const right = ALL_RIGHTS.find((r) => r.toLowerCase() === word.toLowerCase());
    if (!right) {
      throw bad(`unknown right "${word}" (expected Listen, Send or Manage)`);
    }
    if (!out.includes(right)) out.push(right);
  }
  return out;
}

/**
 * `AZTUNNEL_RELAY_SAS_POLICIES`: entries separated by `;` or newlines (neither occurs in a base64 key
 * or a rights list); empty entries are skipped.
 */
export function parseSasPolicyList(text: string, source: string): SasPolicy[] {
  return text.split(/[;\r\n]+/).map((e) => e.trim()).filter((e) => e !== "").map((e) =>
    parseSasPolicy(e, source)
  );
}

/** A `--sas-policy-file`: one policy per line; blank lines and lines starting with `#` are skipped. */
export function parseSasPolicyFile(text: string, file: string): SasPolicy[] {
  const out: SasPolicy[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    out.push(parseSasPolicy(line, `--sas-policy-file ${file}:${i + 1}`));
  });
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

/** Where configured policies come from; a source that was not given is left out. */
export interface PolicySources {
  /** `--sas-policy` values. */
  readonly flags?: readonly string[];
  /** Policies read from `--sas-policy-file`. */
  readonly file?: readonly SasPolicy[];
  /** The value of `AZTUNNEL_RELAY_SAS_POLICIES`. */
  readonly list?: string;
}

/**
 * `--sas-policy` and `--sas-policy-file` together win; else the `AZTUNNEL_RELAY_SAS_POLICIES` list;
 * else `AZTUNNEL_KEY_NAME`/`AZTUNNEL_KEY` from `env` (all rights); else a random key the user is told
 * about. One of the two `AZTUNNEL_KEY*` variables alone is a usage error (it is surely a mistake).
 */
export function resolvePolicies(
  sources: PolicySources,
  env: { get(name: string): string | undefined },
): PolicyResolution {
  let policies = [...(sources.flags ?? []).map((f) => parseSasPolicy(f)), ...(sources.file ?? [])];
  if (policies.length === 0 && sources.list !== undefined) {
    policies = parseSasPolicyList(sources.list, "AZTUNNEL_RELAY_SAS_POLICIES entry");
  }
  if (policies.length > 0) {
    const seen = new Set<string>();
    for (const p of policies) {
      if (seen.has(p.name)) throw new UsageError(`duplicate SAS policy name "${p.name}"`);
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
  return encodeBase64(crypto.getRandomValues(new Uint8Array(32)));
}
