/**
 * Secrets never live in the `up` file (architecture decision 8): a key that names one, or a value
 * that holds a connection string, is refused with the place it was found.
 */

const SECRET_KEY = /key|secret|passw|token|credential|auth/i;
const SECRET_VALUE = /SharedAccess(Key|Signature)\s*=/i;

const WHERE = "put relay credentials in the environment (AZTUNNEL_KEY_NAME and AZTUNNEL_KEY, " +
  "e.g. from a systemd EnvironmentFile) and proxy credentials in a file named by proxy-auth-file";

/**
 * Why `key` may not appear in the file, or undefined when it names no secret. Only for keys the
 * schema does not know: `proxy-auth-file` names a file, not a secret.
 */
export function secretKeyProblem(key: string): string | undefined {
  if (!SECRET_KEY.test(key)) return undefined;
  return `"${key}" looks like a secret, and secrets must not be written in the config file: ${WHERE}`;
}

/** Why `value` (of `key`) may not appear in the file, or undefined. */
export function secretValueProblem(key: string, value: string): string | undefined {
  if (!SECRET_VALUE.test(value)) return undefined;
  return `the value of "${key}" holds a shared access key or signature: ${WHERE}`;
}
