/** Base of every error aztunnel raises on purpose: a stable machine `code` plus a message. */
export class AztunnelError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "AztunnelError";
    this.code = code;
  }
}

/** A bad flag, argument or environment value: the CLI prints it and exits 2. */
export class UsageError extends AztunnelError {
  constructor(message: string) {
    super("usage", message);
    this.name = "UsageError";
  }
}

/** The message of any thrown value, without stack. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** The first line of a message, trailing blanks cut: how a log line names a long error. */
export function firstLine(text: string): string {
  return text.split("\n", 1)[0].trimEnd();
}

/** The `code` of a thrown value when it carries one (ours or Deno's). */
export function errorCode(err: unknown): string | undefined {
  if (err && typeof err === "object" && "code" in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === "string") return code;
  }
  return undefined;
}
