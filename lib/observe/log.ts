/**
 * Logging in the Go tool's shape: logfmt (`time=… level=INFO msg="…" key=value`) or one JSON object
 * per line, always on stderr. Built on @logtape/logtape; message strings are part of the interface.
 */
import {
  configure,
  getLogger as getLogtapeLogger,
  type LogLevel as LogtapeLevel,
  type LogRecord,
  reset,
} from "@logtape/logtape";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "logfmt" | "json";
export type Attrs = Record<string, unknown>;

export interface Logger {
  debug(msg: string, attrs?: Attrs): void;
  info(msg: string, attrs?: Attrs): void;
  warn(msg: string, attrs?: Attrs): void;
  error(msg: string, attrs?: Attrs): void;
  /** A logger that adds `attrs` to every line (e.g. `bridge_id`). */
  with(attrs: Attrs): Logger;
}

export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];
export const LOG_FORMATS: readonly LogFormat[] = ["logfmt", "json"];

const LEVEL_TO_LOGTAPE: Record<LogLevel, LogtapeLevel> = {
  debug: "debug",
  info: "info",
  warn: "warning",
  error: "error",
};
const LEVEL_NAME: Record<LogtapeLevel, string> = {
  trace: "DEBUG",
  debug: "DEBUG",
  info: "INFO",
  warning: "WARN",
  error: "ERROR",
  fatal: "ERROR",
};

const encoder = new TextEncoder();

/** Writes one line to stderr synchronously so lines from one process never interleave. */
function stderrWriter(line: string): void {
  const bytes = encoder.encode(line);
  let off = 0;
  while (off < bytes.length) {
    try {
      off += Deno.stderr.writeSync(bytes.subarray(off));
    } catch {
      return; // stderr gone (closed pipe): logging must never crash the process
    }
  }
}

export interface LogOptions {
  level?: LogLevel;
  format?: LogFormat;
  /** Where finished lines go; defaults to stderr. Tests pass a collector. */
  write?: (line: string) => void;
}

/** Installs the process-wide sink. Safe to call again (reconfigures). */
export async function configureLogging(opts: LogOptions = {}): Promise<void> {
  const format = opts.format ?? "logfmt";
  const write = opts.write ?? stderrWriter;
  await configure({
    reset: true,
    sinks: { out: (r: LogRecord) => write(formatRecord(r, format)) },
    loggers: [
      {
        category: ["aztunnel"],
        lowestLevel: LEVEL_TO_LOGTAPE[opts.level ?? "info"],
        sinks: ["out"],
      },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
    ],
  });
}

export async function resetLogging(): Promise<void> {
  await reset();
}

export function formatRecord(r: LogRecord, format: LogFormat): string {
  const time = rfc3339(new Date(r.timestamp));
  const level = LEVEL_NAME[r.level];
  const msg = typeof r.rawMessage === "string" ? r.rawMessage : r.message.join("");
  if (format === "json") {
    const obj: Record<string, unknown> = { time, level, msg };
    for (const [k, v] of Object.entries(r.properties)) obj[k] = jsonValue(v);
    return JSON.stringify(obj) + "\n";
  }
  let line = `time=${time} level=${level} msg=${logfmtValue(msg)}`;
  for (const [k, v] of Object.entries(r.properties)) line += ` ${k}=${logfmtValue(textValue(v))}`;
  return line + "\n";
}

function textValue(v: unknown): string {
  if (v instanceof Error) return v.message;
  if (v === undefined || v === null) return "";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function jsonValue(v: unknown): unknown {
  if (v instanceof Error) return v.message;
  return v;
}

/** Quotes like Go slog's TextHandler: only when empty or holding space, `=`, `"` or control chars. */
export function logfmtValue(s: string): string {
  // deno-lint-ignore no-control-regex
  if (s === "" || /[\s="\u0000-\u001f\u007f]/.test(s)) return JSON.stringify(s);
  return s;
}

/** RFC 3339 with milliseconds and the local offset, as Go prints it. */
function rfc3339(d: Date): string {
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  const off = -d.getTimezoneOffset();
  const tz = off === 0
    ? "Z"
    : `${off > 0 ? "+" : "-"}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${
    pad(d.getMinutes())
  }:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}${tz}`;
}

class TapeLogger implements Logger {
  #attrs: Attrs;
  constructor(attrs: Attrs) {
    this.#attrs = attrs;
  }
  #emit(level: LogtapeLevel, msg: string, attrs?: Attrs) {
    const props: Attrs = { ...this.#attrs };
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) if (v !== undefined) props[k] = v;
    }
    const logger = getLogtapeLogger(["aztunnel"]);
    if (!logger.isEnabledFor(level)) return;
    // emit() bypasses template parsing, so a `{` in a message is printed as is.
    logger.emit({
      level,
      timestamp: Date.now(),
      message: [msg],
      rawMessage: msg,
      properties: props,
    });
  }
  debug(msg: string, attrs?: Attrs) {
    this.#emit("debug", msg, attrs);
  }
  info(msg: string, attrs?: Attrs) {
    this.#emit("info", msg, attrs);
  }
  warn(msg: string, attrs?: Attrs) {
    this.#emit("warning", msg, attrs);
  }
  error(msg: string, attrs?: Attrs) {
    this.#emit("error", msg, attrs);
  }
  with(attrs: Attrs): Logger {
    return new TapeLogger({ ...this.#attrs, ...attrs });
  }
}

/** The root logger; derive per-connection loggers with `.with({...})`. */
export function getLogger(attrs: Attrs = {}): Logger {
  return new TapeLogger(attrs);
}
