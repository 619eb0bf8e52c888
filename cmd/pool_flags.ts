/** `--pool-min`/`--pool-max`: the warm-leg pool of every long-running sender (services, agent). */
import { Option } from "@commander-js/extra-typings";
import { UsageError } from "../lib/errors.ts";
import { parseCount } from "./common.ts";
import { DEFAULT_POOL_MAX, DEFAULT_POOL_MIN } from "../lib/sender/warm_pool.ts";

export const poolMinOption = () =>
  new Option("--pool-min <n>", "warm relay legs kept ready once the listener supports them")
    .env("AZTUNNEL_POOL_MIN")
    .default(String(DEFAULT_POOL_MIN));

export const poolMaxOption = () =>
  new Option("--pool-max <n>", "most warm relay legs, grown with demand (0 = no warm legs)")
    .env("AZTUNNEL_POOL_MAX")
    .default(String(DEFAULT_POOL_MAX));

export interface PoolFlags {
  poolMin: string;
  poolMax: string;
}

/** `--pool-min`/`--pool-max`; a max of 0 turns warm legs off (and the floor is then ignored). */
export function poolFlags(minText: string, maxText: string): { min: number; max: number } {
  const min = parseCount(minText, "--pool-min");
  const max = parseCount(maxText, "--pool-max");
  if (max > 0 && min > max) {
    throw new UsageError(`--pool-min ${min} is more than --pool-max ${max}`);
  }
  return { min, max };
}
