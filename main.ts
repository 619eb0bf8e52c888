import { runCli } from "./cmd/root.ts";

Deno.exit(await runCli(Deno.args));
