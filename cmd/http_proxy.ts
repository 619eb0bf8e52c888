/** The flags `relay-sender http-proxy` adds to the service flags: its Basic proxy credentials. */
import { type Command, Option } from "@commander-js/extra-typings";
import { UsageError } from "../lib/errors.ts";
import { runHttpProxy } from "../lib/sender/http_proxy.ts";
import { ProxyAuth } from "../lib/sender/http_proxy_auth.ts";
import type { TunnelServiceOptions } from "../lib/sender/tunnel_service.ts";
import type { OptionSources } from "./common.ts";

/** Port 3128, as squid and most proxy settings expect. */
export const HTTP_PROXY_BIND = "127.0.0.1:3128";

export function addProxyAuthOptions<Args extends unknown[], Opts extends Record<string, unknown>>(
  cmd: Command<Args, Opts>,
) {
  return cmd
    .addOption(
      new Option(
        "--proxy-auth <user:password>",
        "require these Basic proxy credentials (prefer the environment: a flag shows in ps)",
      ).env("AZTUNNEL_PROXY_AUTH"),
    )
    .addOption(
      new Option("--proxy-auth-file <file>", "read the user:password for --proxy-auth from a file")
        .env("AZTUNNEL_PROXY_AUTH_FILE"),
    );
}

export interface ProxyAuthFlags {
  proxyAuth?: string;
  proxyAuthFile?: string;
}

/**
 * The credentials the flags name, if any; UsageError when one is malformed or both are given the
 * same way (a flag beats the other's environment variable).
 */
export async function proxyAuthFlag(
  flags: ProxyAuthFlags,
  cmd: OptionSources,
): Promise<ProxyAuth | undefined> {
  let { proxyAuth, proxyAuthFile } = flags;
  if (proxyAuth !== undefined && proxyAuthFile !== undefined) {
    const authCli = cmd.getOptionValueSource("proxyAuth") === "cli";
    const fileCli = cmd.getOptionValueSource("proxyAuthFile") === "cli";
    if (authCli === fileCli) {
      throw new UsageError("--proxy-auth and --proxy-auth-file are mutually exclusive");
    }
    if (authCli) proxyAuthFile = undefined;
    else proxyAuth = undefined;
  }
  if (proxyAuth !== undefined) return new ProxyAuth(proxyAuth, "--proxy-auth");
  if (proxyAuthFile === undefined) return undefined;
  let text: string;
  try {
    text = await Deno.readTextFile(proxyAuthFile);
  } catch (err) {
    throw new UsageError(`--proxy-auth-file ${proxyAuthFile}: ${(err as Error).message}`);
  }
  // One line; the newline an editor or `echo` adds is not part of the password.
  return new ProxyAuth(text.replace(/\r?\n$/, ""), `--proxy-auth-file ${proxyAuthFile}`);
}

/** Said once at start when the password came as a flag: every local user's `ps` shows it. */
export const AUTH_ON_COMMAND_LINE =
  "--proxy-auth on the command line is visible to other local users (ps); " +
  "use AZTUNNEL_PROXY_AUTH or --proxy-auth-file";

/** Validates the proxy's own flags, then returns the service runner for `runService`. */
export async function httpProxyRunner(
  flags: ProxyAuthFlags,
  cmd: OptionSources,
): Promise<(opts: TunnelServiceOptions) => Promise<void>> {
  const auth = await proxyAuthFlag(flags, cmd);
  const onCommandLine = auth !== undefined && cmd.getOptionValueSource("proxyAuth") === "cli";
  return (opts) => {
    if (onCommandLine) opts.logger.warn(AUTH_ON_COMMAND_LINE);
    return runHttpProxy({ ...opts, auth });
  };
}
