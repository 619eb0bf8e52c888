/**
 * Envelope v1 (reference §2): the one JSON exchange that opens every tunnel. The sender sends a
 * ConnectEnvelope as TEXT, the listener answers a ConnectResponse as TEXT, then BINARY data flows.
 * Decoding follows Go's encoding/json so a Go peer and a Deno peer agree on every input: unknown
 * fields ignored, keys matched case-insensitively (last one wins), `null` leaves a field unset, a
 * missing version reads as 0, a value of the wrong type fails the whole decode.
 *
 * Extensions are negotiated (architecture decision 5): the sender lists its features in
 * `metadata["x-aztunnel-features"]` (a comma list, ignored by Go listeners); a Deno listener answers
 * with `features` (ignored by Go senders). Only the intersection is used.
 */

export const ENVELOPE_VERSION = 1;
/** Largest data message we send; Go peers close with 1009 above it (coder/websocket read limit). */
export const MAX_DATA_MESSAGE = 32768;
/** Largest envelope a listener reads: Go's read limit, so both refuse the same envelopes. */
export const MAX_ENVELOPE_SIZE = 32768;
/** How much of a peer-chosen string (a target, an error naming it) goes into a log line. */
export const MAX_LOGGED_CHARS = 256;
export const FEATURES_METADATA_KEY = "x-aztunnel-features";
export const FEATURE_HALF_CLOSE = "half-close";
/** Every feature this build implements. */
export const FEATURES: readonly string[] = [FEATURE_HALF_CLOSE];

export interface ConnectEnvelope {
  version: number;
  target: string;
  metadata?: Record<string, string>;
  bridge_id?: string;
}

export interface ConnectResponse {
  version: number;
  ok: boolean;
  error?: string;
  code?: string;
  listener_id?: string;
  features?: string[];
}

/** The listener's machine codes (reference §2.3) plus our `not_allowed`. */
export type RejectCode =
  | "connection_refused"
  | "host_unreachable"
  | "network_unreachable"
  | "timeout"
  | "dns_not_found"
  | "dns_timeout"
  | "not_allowed";

/** Field order is Go's struct order, so our bytes equal the Go tool's. Empty optionals are omitted. */
export function encodeEnvelope(env: ConnectEnvelope): string {
  const out: Record<string, unknown> = { version: env.version, target: env.target };
  if (env.metadata && Object.keys(env.metadata).length > 0) out.metadata = env.metadata;
  if (env.bridge_id) out.bridge_id = env.bridge_id;
  return JSON.stringify(out);
}

export function encodeResponse(res: ConnectResponse): string {
  const out: Record<string, unknown> = { version: res.version, ok: res.ok };
  if (res.error) out.error = res.error;
  if (res.code) out.code = res.code;
  if (res.listener_id) out.listener_id = res.listener_id;
  if (res.features && res.features.length > 0) out.features = res.features;
  return JSON.stringify(out);
}

export class EnvelopeDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EnvelopeDecodeError";
  }
}

/** A number written with a fraction or exponent (`1.0`, `1e0`): Go refuses it for an int field. */
class NonInteger {
  constructor(readonly source: string) {}
}

interface JsonSource {
  readonly source?: string;
}

/** Marks non-integer number tokens, whose value JSON.parse alone would not tell apart from ints. */
function markNonIntegers(_key: string, value: unknown, ctx?: JsonSource): unknown {
  if (typeof value === "number" && ctx?.source !== undefined && !/^-?\d+$/.test(ctx.source)) {
    return new NonInteger(ctx.source);
  }
  return value;
}

/** A peer-chosen string as it goes into a log line: cut to MAX_LOGGED_CHARS characters. */
export function clipForLog(text: string): string {
  if (text.length <= MAX_LOGGED_CHARS) return text;
  return `${text.slice(0, MAX_LOGGED_CHARS)}… (${text.length} chars)`;
}

interface KindTypes {
  int: number;
  string: string;
  bool: boolean;
  stringMap: Record<string, string>;
  stringList: string[];
}
type Kind = keyof KindTypes;
type Decoded<S extends Record<string, Kind>> = { [K in keyof S]?: KindTypes[S[K]] };

/**
 * Decodes a JSON object into the named fields the way Go's json.Unmarshal fills a struct: the
 * `required` ones fall back to their zero value, the others are left out when unset or "".
 */
function decodeStruct<S extends Record<string, Kind>, R extends keyof S>(
  text: string,
  fields: S,
  required: { [K in R]: KindTypes[S[K]] },
): { [K in R]: KindTypes[S[K]] } & Decoded<S> {
  let raw: unknown;
  try {
    raw = JSON.parse(text, markNonIntegers);
  } catch (err) {
    throw new EnvelopeDecodeError((err as Error).message);
  }
  if (
    raw !== null && (typeof raw !== "object" || Array.isArray(raw) || raw instanceof NonInteger)
  ) {
    throw new EnvelopeDecodeError(`cannot decode JSON ${jsonKind(raw)} into an object`);
  }
  const found: Record<string, unknown> = {};
  const byLower = new Map(Object.keys(fields).map((k) => [k.toLowerCase(), k]));
  for (const [key, value] of Object.entries(raw ?? {})) {
    const name = byLower.get(key.toLowerCase());
    if (!name || value === null) continue;
    found[name] = checkKind(name, fields[name], value);
  }
  const out: Record<string, unknown> = { ...required };
  for (const name of Object.keys(fields)) {
    if (name in required) out[name] = found[name] ?? out[name];
    else if (found[name]) out[name] = found[name];
  }
  return out as { [K in R]: KindTypes[S[K]] } & Decoded<S>;
}

function checkKind(name: string, kind: Kind, v: unknown): unknown {
  const fail = () =>
    new EnvelopeDecodeError(`cannot decode JSON ${jsonKind(v)} into field ${name}`);
  switch (kind) {
    case "int":
      if (typeof v !== "number" || !Number.isSafeInteger(v)) throw fail();
      return v;
    case "string":
      if (typeof v !== "string") throw fail();
      return v;
    case "bool":
      if (typeof v !== "boolean") throw fail();
      return v;
    case "stringMap": {
      if (typeof v !== "object" || Array.isArray(v) || v instanceof NonInteger) throw fail();
      const m: Record<string, string> = {};
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (typeof x === "string") m[k] = x;
        else if (x !== null) throw fail();
      }
      return m;
    }
    case "stringList":
      if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) throw fail();
      return v;
  }
}

function jsonKind(v: unknown): string {
  if (v instanceof NonInteger) return `number ${v.source.slice(0, 24)}`;
  if (Array.isArray(v)) return "array";
  if (v === null) return "null";
  return typeof v;
}

/** Throws EnvelopeDecodeError when the text is not a decodable envelope (the listener answers `invalid envelope`). */
export function decodeEnvelope(text: string): ConnectEnvelope {
  return decodeStruct(
    text,
    { version: "int", target: "string", metadata: "stringMap", bridge_id: "string" },
    { version: 0, target: "" },
  );
}

/** Throws EnvelopeDecodeError on undecodable text. The sender does not check `version`. */
export function decodeResponse(text: string): ConnectResponse {
  return decodeStruct(
    text,
    {
      version: "int",
      ok: "bool",
      error: "string",
      code: "string",
      listener_id: "string",
      features: "stringList",
    },
    { version: 0, ok: false },
  );
}

/** The features a sender offered in its envelope metadata. */
export function offeredFeatures(env: ConnectEnvelope): string[] {
  const list = env.metadata?.[FEATURES_METADATA_KEY];
  if (!list) return [];
  return list.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/** The metadata a sender puts in its envelope to offer `features`. */
export function featuresMetadata(features: readonly string[]): Record<string, string> {
  return features.length > 0 ? { [FEATURES_METADATA_KEY]: features.join(",") } : {};
}

/** Features both sides implement, in our order. */
export function negotiate(ours: readonly string[], theirs: readonly string[]): string[] {
  return ours.filter((f) => theirs.includes(f));
}
