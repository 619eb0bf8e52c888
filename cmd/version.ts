import type { Command } from "@commander-js/extra-typings";
import { VERSION } from "../lib/version.ts";

export function register(program: Command): void {
  program.command("version").description("print the version").action(() => {
    console.log(VERSION);
  });
}
