/**
 * Which keys the `up` file takes where, and what each value must look like. Keys are the long flag
 * names; a value is checked with the same parser as its flag, so the file and the flag cannot
 * disagree on what is valid.
 */
import { parseDuration } from "../duration.ts";
import { UsageError } from "../errors.ts";
import { parseHostPort } from "../net/host_port.ts";
import { LOG_FORMATS, LOG_LEVELS } from "../observe/log.ts";
import { parseListenAddr } from "../observe/ops_server.ts";
import { parseAcceptHost } from "../relay/accept_address.ts";
import { normalizeTarget } from "../sender/target.ts";
import { parseAllowlist } from "../tunnel/allowlist.ts";
import type { TunnelKind } from "./types.ts";

/** How a YAML value is read: one scalar as text, a text or a list of texts, or a boolean. */
export type ValueShape = "text" | "list" | "bool";

export interface KeySpec {
  shape: ValueShape;
  /** Throws UsageError when the value is not one its flag would take. */
  check?(value: string | string[]): void;
}

const text: KeySpec = { shape: "text" };

function count(flag: string): KeySpec {
  return {
    shape: "text",
    check: (v) => {
      if (!/^\d+$/.test(String(v))) {
        throw new UsageError(`invalid ${flag} "${v}": expected a number >= 0`);
      }
    },
  };
}

function duration(flag: string): KeySpec {
  return { shape: "text", check: (v) => void parseDuration(String(v), flag) };
}

function choice(flag: string, choices: readonly string[]): KeySpec {
  return {
    shape: "text",
    check: (v) => {
      if (!choices.includes(String(v).toLowerCase())) {
        throw new UsageError(`invalid ${flag} "${v}": expected one of ${choices.join(", ")}`);
      }
    },
  };
}

function hostPort(flag: string): KeySpec {
  return {
    shape: "text",
    check: (v) => {
      if (!parseHostPort(String(v))) {
        throw new UsageError(`invalid ${flag} "${v}": expected host:port`);
      }
    },
  };
}

const relayKeys: Record<string, KeySpec> = {
  relay: text,
  hyco: text,
  "relay-suffix": text,
  "relay-ca-cert": text,
};

/** Keys at the top of the file besides `listeners` and `tunnels`. */
export const TOP_KEYS: Record<string, KeySpec> = {
  ...relayKeys,
  "log-level": choice("log-level", LOG_LEVELS),
  "log-format": choice("log-format", LOG_FORMATS),
  "metrics-addr": {
    shape: "text",
    check: (v) => {
      if (!parseListenAddr(String(v))) {
        throw new UsageError(`invalid metrics-addr "${v}": expected host:port`);
      }
    },
  },
  "metrics-max-targets": count("metrics-max-targets"),
};

const localKeys: Record<string, KeySpec> = {
  "tcp-keepalive": duration("tcp-keepalive"),
  "drain-timeout": duration("drain-timeout"),
  "half-close-linger": duration("half-close-linger"),
};

export const LISTENER_KEYS: Record<string, KeySpec> = {
  name: text,
  ...relayKeys,
  allow: { shape: "list", check: (v) => void parseAllowlist(v as string[]) },
  "relay-accept-host": {
    shape: "list",
    check: (v) => {
      for (const h of (v as string[]).flatMap((t) => t.split(",")).map((t) => t.trim())) {
        try {
          if (h !== "") parseAcceptHost(h);
        } catch {
          throw new UsageError(`invalid relay-accept-host "${h}": expected host or host:port`);
        }
      }
    },
  },
  "max-connections": count("max-connections"),
  "max-warm-legs": count("max-warm-legs"),
  "connect-timeout": duration("connect-timeout"),
  ...localKeys,
};

/** The keys that make a tunnel entry what it is; exactly one per tunnel. */
export const TUNNEL_KINDS: readonly TunnelKind[] = ["port-forward", "socks5-proxy", "http-proxy"];

export const TUNNEL_KEYS: Record<string, KeySpec> = {
  name: text,
  ...relayKeys,
  "port-forward": { shape: "text", check: (v) => void normalizeTarget(String(v)) },
  "socks5-proxy": hostPort("socks5-proxy bind address"),
  "http-proxy": hostPort("http-proxy bind address"),
  bind: hostPort("bind address"),
  gateway: { shape: "bool" },
  /** http-proxy only: the `user:password` file of `--proxy-auth-file`. */
  "proxy-auth-file": text,
  "pool-min": count("pool-min"),
  "pool-max": count("pool-max"),
  "pool-streams": count("pool-streams"),
  ...localKeys,
};

/** Entry names: log attribute and metric label values, so nothing that needs quoting. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
