/** SIGHUP for `up`: one reload at a time, and one more queued when signals arrive meanwhile. */

/** Calls `reload` on every SIGHUP (not on Windows, which has none); returns the unsubscribe. */
export function onHangup(reload: () => Promise<void>): () => void {
  if (Deno.build.os === "windows") return () => {};
  let running: Promise<void> | undefined;
  let again = false;
  const run = () => {
    running = reload().finally(() => {
      running = undefined;
      if (again) {
        again = false;
        run();
      }
    });
  };
  const handler = () => {
    if (running) again = true;
    else run();
  };
  Deno.addSignalListener("SIGHUP", handler);
  return () => Deno.removeSignalListener("SIGHUP", handler);
}
