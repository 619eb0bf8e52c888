import assert from "node:assert/strict";
import { pathEscape, queryEscape } from "../../lib/relay/escape.ts";

// Expected values are Go's own url_test.go cases for QueryEscape / PathEscape.
const NASTY = " ?&=#+%!<>#\"{}|\\^[]`☺\t:/@$'()*,;";

Deno.test("queryEscape matches Go url.QueryEscape", () => {
  const cases: [string, string][] = [
    ["", ""],
    ["abc", "abc"],
    ["one two", "one+two"],
    ["10%", "10%25"],
    ["AZaz09-_.~", "AZaz09-_.~"],
    ["!'()*", "%21%27%28%29%2A"],
    ["é", "%C3%A9"],
    [
      NASTY,
      "+%3F%26%3D%23%2B%25%21%3C%3E%23%22%7B%7D%7C%5C%5E%5B%5D%60%E2%98%BA%09%3A%2F%40%24%27%28%29%2A%2C%3B",
    ],
  ];
  for (const [input, want] of cases) assert.equal(queryEscape(input), want, input);
});

Deno.test("pathEscape matches Go url.PathEscape", () => {
  const cases: [string, string][] = [
    ["", ""],
    ["abc", "abc"],
    ["abc+def", "abc+def"],
    ["a/b", "a%2Fb"],
    ["one two", "one%20two"],
    ["my entity", "my%20entity"],
    ["10%", "10%25"],
    [
      NASTY,
      "%20%3F&=%23+%25%21%3C%3E%23%22%7B%7D%7C%5C%5E%5B%5D%60%E2%98%BA%09:%2F@$%27%28%29%2A%2C%3B",
    ],
  ];
  for (const [input, want] of cases) assert.equal(pathEscape(input), want, input);
});
