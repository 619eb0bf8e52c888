/** A problem in the `up` config file, named by file, line and column, and the error that carries them. */
import { UsageError } from "../errors.ts";

/** 1-based, as editors count. */
export interface Position {
  line: number;
  col: number;
}

export interface ConfigIssue {
  pos: Position;
  message: string;
}

/** `file:line:col: message`, the shape compilers use, so editors can jump to it. */
export function formatIssue(file: string, issue: ConfigIssue): string {
  return `${file}:${issue.pos.line}:${issue.pos.col}: ${issue.message}`;
}

/** An invalid config file: a usage error (exit 2) whose message lists every issue, one a line. */
export class ConfigError extends UsageError {
  readonly file: string;
  readonly issues: readonly ConfigIssue[];

  constructor(file: string, issues: readonly ConfigIssue[]) {
    super(issues.map((i) => formatIssue(file, i)).join("\n"));
    this.name = "ConfigError";
    this.file = file;
    this.issues = issues;
  }

  /** The issues as `file:line:col: message` lines. */
  lines(): string[] {
    return this.issues.map((i) => formatIssue(this.file, i));
  }
}
