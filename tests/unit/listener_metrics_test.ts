import assert from "node:assert/strict";
import { Metrics } from "../../lib/observe/metrics.ts";

Deno.test("aztunnel_warm_legs_held: absent until the listener sets it, then a plain gauge", () => {
  const m = new Metrics({ processMetrics: false });
  assert.doesNotMatch(m.render(), /warm_legs/);
  m.setWarmLegsHeld(0);
  assert.match(
    m.render(),
    /# HELP aztunnel_warm_legs_held Warm relay legs the listener holds, waiting for their envelope\.\n# TYPE aztunnel_warm_legs_held gauge\naztunnel_warm_legs_held 0\n/,
  );
  m.setWarmLegsHeld(3);
  assert.match(m.render(), /^aztunnel_warm_legs_held 3$/m);
});
