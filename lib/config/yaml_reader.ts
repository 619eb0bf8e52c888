/**
 * The YAML side of the `up` file: parses with the `yaml` package (YAML 1.2 core schema, duplicate
 * keys refused) and reads nodes as the schema's shapes, each problem recorded at its line and column.
 */
import {
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
  type YAMLMap,
} from "yaml";
import type { ConfigIssue, Position } from "./issue.ts";
import type { ValueShape } from "./schema.ts";

/** One key of a YAML map: its name, where the key is, and its value node. */
export interface MapItem {
  key: string;
  pos: Position;
  value: Node | null;
}

export class YamlReader {
  readonly issues: ConfigIssue[] = [];
  readonly root: Node | null;
  readonly #lines = new LineCounter();

  constructor(text: string) {
    const doc = parseDocument(text, {
      lineCounter: this.#lines,
      prettyErrors: false,
      uniqueKeys: true,
    });
    for (const e of [...doc.errors, ...doc.warnings]) {
      this.issues.push({ pos: this.#at(e.pos[0]), message: e.message.split("\n", 1)[0] });
    }
    this.root = doc.errors.length > 0 ? null : doc.contents as Node | null;
  }

  #at(offset: number): Position {
    const { line, col } = this.#lines.linePos(offset);
    return { line, col };
  }

  /** Where `node` starts; 1:1 for a missing node. */
  pos(node: Node | null | undefined): Position {
    return node?.range ? this.#at(node.range[0]) : { line: 1, col: 1 };
  }

  fail(pos: Position, message: string): void {
    this.issues.push({ pos, message });
  }

  /** The items of a map node; records an issue and returns null when `node` is not a map. */
  map(node: Node | null, what: string, at: Position): MapItem[] | null {
    if (!isMap(node)) {
      this.fail(node ? this.pos(node) : at, `${what} must be a map of keys`);
      return null;
    }
    const items: MapItem[] = [];
    for (const pair of (node as YAMLMap<unknown, unknown>).items) {
      const key = pair.key as Node | null;
      if (!isScalar(key) || typeof key.value !== "string") {
        this.fail(this.pos(key), "keys must be plain names");
        continue;
      }
      items.push({ key: key.value, pos: this.pos(key), value: pair.value as Node | null });
    }
    return items;
  }

  /** The nodes of a list; records an issue and returns null when `node` is not one. */
  list(node: Node | null, what: string, at: Position): Node[] | null {
    if (!isSeq(node)) {
      this.fail(node ? this.pos(node) : at, `${what} must be a list`);
      return null;
    }
    return node.items as Node[];
  }

  /** The value of `item` in `shape`, or undefined (issue recorded) when it has another shape. */
  value(item: MapItem, shape: ValueShape): string | string[] | boolean | undefined {
    const node = item.value;
    const at = node ? this.pos(node) : item.pos;
    if (isAlias(node)) {
      this.fail(at, `"${item.key}": aliases are not supported here`);
      return undefined;
    }
    if (shape === "bool") {
      if (isScalar(node) && typeof node.value === "boolean") return node.value;
      this.fail(at, `"${item.key}" must be true or false`);
      return undefined;
    }
    const one = this.#text(node);
    if (one !== undefined) return shape === "list" ? [one] : one;
    if (shape === "list" && isSeq(node)) {
      const texts = (node.items as Node[]).map((n) => this.#text(n));
      const bad = texts.findIndex((t) => t === undefined);
      if (bad < 0) return texts as string[];
      this.fail(this.pos((node.items as Node[])[bad]), `"${item.key}" entries must be text`);
      return undefined;
    }
    const want = shape === "list" ? "a text or a list of texts" : "a single value";
    this.fail(at, node ? `"${item.key}" must be ${want}` : `"${item.key}" needs a value`);
    return undefined;
  }

  /** A text or number scalar as text (`100` and `"100"` alike); undefined for anything else. */
  #text(node: Node | null): string | undefined {
    if (!isScalar(node)) return undefined;
    if (typeof node.value === "string") return node.value;
    if (typeof node.value === "number") return node.source ?? String(node.value);
    return undefined;
  }
}
