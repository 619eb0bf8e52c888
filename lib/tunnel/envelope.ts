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

import { FEATURE_EARLY_DATA, FEATURE_MUX, FEATURE_WARM } from "./warm.ts";

export const ENVELOPE_VERSION = 1;
/** Largest data message we send; Go peers close with 1009 above it (coder/websocket read limit). */
export const MAX_DATA_MESSAGE = 32768;
/** Largest envelope a listener reads: Go's read limit, so both refuse the same envelopes. */
export const MAX_ENVELOPE_SIZE = 32768;
/** How much of a peer-chosen string (a target, an error naming it) goes into a log line. */
export const MAX_LOGGED_CHARS = 256;
export const FEATURES_METADATA_KEY = "x-aztunnel-features";
export const FEATURE_HALF_CLOSE = "half-close";
/** Every feature this build implements (`warm`, `early-data` and `mux`: lib/tunnel/warm.ts). */
export const FEATURES: readonly string[] = [
  FEATURE_HALF_CLOSE,
  FEATURE_WARM,
  FEATURE_EARLY_DATA,
  FEATURE_MUX,
];

/** What the sender asks for: its first message, as TEXT. */
export interface ConnectEnvelope {
  /**
   * ENVELOPE_VERSION. A listener refuses any other value ("unsupported protocol version"); a
   * missing one reads as 0, and one written `1.0` or `1e0` fails the decode ("invalid envelope").
   */
  version: number;
  /**
   * The TCP target as `host:port` (IPv6 in brackets), dialled by the listener as written (no DNS
   * before the allowlist). Empty: "missing target".
   */
  target: string;
  /**
   * Free-form strings for extensions; Go listeners ignore it. FEATURES_METADATA_KEY carries the
   * sender's comma-separated features. Omitted when empty.
   */
  metadata?: Record<string, string>;
  /** The sender's id for this tunnel, only for correlating logs (clipped there); omitted when empty. */
  bridge_id?: string;
}

/** The listener's answer, as TEXT; data flows only after `ok: true`. */
export interface ConnectResponse {
  /** ENVELOPE_VERSION; the sender does not check it. */
  version: number;
  /** True: the target is connected and BINARY data may flow. False: the listener closes (1000). */
  ok: boolean;
  /**
   * Why not, in the Go tool's words: "invalid envelope", "unsupported protocol version", "missing
   * target", "target not allowed", "connection failed". Omitted when ok.
   */
  error?: string;
  /** A RejectCode when the failure has one; omitted otherwise (an unclassified dial failure too). */
  code?: string;
  /** The listener's id, for the sender's logs. */
  listener_id?: string;
  /** The features granted: the sender's offer intersected with the listener's. Omitted when none. */
  features?: string[];
}

/** The listener's machine codes for a refused tunnel (reference §2.3), plus our `not_allowed`. */
export type RejectCode =
  /** The target host answered the dial with a reset: nothing listens on that port. */
  | "connection_refused"
  /** No route to the target host (EHOSTUNREACH). */
  | "host_unreachable"
  /** No route to the target's network (ENETUNREACH). */
  | "network_unreachable"
  /** The dial (resolve and connect) did not finish within the listener's connect timeout. */
  | "timeout"
  /** The target's name does not resolve. */
  | "dns_not_found"
  /** The resolver did not answer (or answered "try again"). */
  | "dns_timeout"
  /** The target is not on the listener's `--allow` list (a Deno listener's code; Go has none). */
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

/**
 * The fields `names` (all lower case) of a JSON object, the way Go's json.Unmarshal finds a
 * struct's fields: keys matched case-insensitively in document order (so the last one wins),
 * unknown keys and `null` values skipped. `null` itself is an object with no fields.
 */
function jsonFields(text: string, names: readonly string[]): [string, unknown][] {
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
  const fields: [string, unknown][] = [];
  for (const [key, value] of Object.entries(raw ?? {})) {
    const name = key.toLowerCase();
    if (names.includes(name) && value !== null) fields.push([name, value]);
  }
  return fields;
}

function typeError(name: string, v: unknown): EnvelopeDecodeError {
  return new EnvelopeDecodeError(`cannot decode JSON ${jsonKind(v)} into field ${name}`);
}

function int(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v)) throw typeError(name, v);
  return v;
}

function string(name: string, v: unknown): string {
  if (typeof v !== "string") throw typeError(name, v);
  return v;
}

function bool(name: string, v: unknown): boolean {
  if (typeof v !== "boolean") throw typeError(name, v);
  return v;
}

/** A map of strings; `null` values are skipped, as Go leaves them out of a map[string]string. */
function stringMap(name: string, v: unknown): Record<string, string> {
  if (typeof v !== "object" || v === null || Array.isArray(v) || v instanceof NonInteger) {
    throw typeError(name, v);
  }
  const m: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x === "string") m[k] = x;
    else if (x !== null) throw typeError(name, v);
  }
  return m;
}

function stringList(name: string, v: unknown): string[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) throw typeError(name, v);
  return v;
}

function jsonKind(v: unknown): string {
  if (v instanceof NonInteger) return `number ${v.source.slice(0, 24)}`;
  if (Array.isArray(v)) return "array";
  if (v === null) return "null";
  return typeof v;
}

const ENVELOPE_FIELDS = ["version", "target", "metadata", "bridge_id"];

/** Throws EnvelopeDecodeError when the text is not a decodable envelope (the listener answers `invalid envelope`). */
export function decodeEnvelope(text: string): ConnectEnvelope {
  const env: ConnectEnvelope = { version: 0, target: "" };
  let metadata: Record<string, string> | undefined;
  let bridgeId = "";
  for (const [name, v] of jsonFields(text, ENVELOPE_FIELDS)) {
    if (name === "version") env.version = int(name, v);
    else if (name === "target") env.target = string(name, v);
    else if (name === "metadata") metadata = stringMap(name, v);
    else bridgeId = string(name, v);
  }
  if (metadata) env.metadata = metadata;
  if (bridgeId) env.bridge_id = bridgeId;
  return env;
}

const RESPONSE_FIELDS = ["version", "ok", "error", "code", "listener_id", "features"];

/** Throws EnvelopeDecodeError on undecodable text. The sender does not check `version`. */
export function decodeResponse(text: string): ConnectResponse {
  const res: ConnectResponse = { version: 0, ok: false };
  const optional: { error?: string; code?: string; listener_id?: string } = {};
  let features: string[] | undefined;
  for (const [name, v] of jsonFields(text, RESPONSE_FIELDS)) {
    if (name === "version") res.version = int(name, v);
    else if (name === "ok") res.ok = bool(name, v);
    else if (name === "features") features = stringList(name, v);
    else optional[name as keyof typeof optional] = string(name, v);
  }
  if (optional.error) res.error = optional.error;
  if (optional.code) res.code = optional.code;
  if (optional.listener_id) res.listener_id = optional.listener_id;
  if (features) res.features = features;
  return res;
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
