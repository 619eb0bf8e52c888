/**
 * `--pool-min`/`--pool-max`/`--pool-streams`: the warm-leg pool of every long-running sender
 * (services, agent).
 */
import { Option } from "@commander-js/extra-typings";
import { UsageError } from "../lib/errors.ts";
import { parseCount } from "./common.ts";
import { DEFAULT_POOL_MAX, DEFAULT_POOL_MIN } from "../lib/sender/warm_pool.ts";
import { SHARED_LEG_STREAMS } from "../lib/sender/shared_legs.ts";
import { SHARED_LEG_MAX_STREAMS } from "../lib/listener/shared_leg.ts";

export const poolMinOption = () =>
  new Option("--pool-min <n>", "warm relay legs kept ready once the listener supports them")
    .env("AZTUNNEL_POOL_MIN")
    .default(String(DEFAULT_POOL_MIN));

export const poolMaxOption = () =>
  new Option("--pool-max <n>", "most warm relay legs, grown with demand (0 = no warm legs)")
    .env("AZTUNNEL_POOL_MAX")
    .default(String(DEFAULT_POOL_MAX));

export const poolStreamsOption = () =>
  new Option(
    "--pool-streams <n>",
    "tunnels one shared warm leg carries when a burst finds no leg of its own (0 = no sharing)",
  )
    .env("AZTUNNEL_POOL_STREAMS")
    .default(String(SHARED_LEG_STREAMS));

export interface PoolFlags {
  poolMin: string;
  poolMax: string;
  poolStreams: string;
}

/** The pool of a sender: a max of 0 turns warm legs off (floor and streams are then ignored). */
export interface Pool {
  min: number;
  max: number;
  streams: number;
}

/** `--pool-min`/`--pool-max`/`--pool-streams` (at most what a listener takes on one leg). */
export function poolFlags(
  minText: string,
  maxText: string,
  streamsText = String(SHARED_LEG_STREAMS),
): Pool {
  const min = parseCount(minText, "--pool-min");
  const max = parseCount(maxText, "--pool-max");
  const streams = parseCount(streamsText, "--pool-streams");
  if (max > 0 && min > max) {
    throw new UsageError(`--pool-min ${min} is more than --pool-max ${max}`);
  }
  if (streams > SHARED_LEG_MAX_STREAMS) {
    throw new UsageError(
      `--pool-streams ${streams} is more than a listener carries on one leg (${SHARED_LEG_MAX_STREAMS})`,
    );
  }
  return { min, max, streams };
}
