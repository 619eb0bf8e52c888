/**
 * Go's `url.QueryEscape` and `url.PathEscape`, byte for byte: Azure only sees what the Go tool sends,
 * and the SAS `sr` is signed over the escaped text, so `encodeURIComponent` (which keeps `!'()*`) and
 * lowercase hex would both produce different tokens.
 */

const HEX = "0123456789ABCDEF";
const encoder = new TextEncoder();

function isUnreserved(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || // 0-9
    (b >= 0x41 && b <= 0x5a) || // A-Z
    (b >= 0x61 && b <= 0x7a) || // a-z
    b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e; // - . _ ~
}

// Reserved characters a path segment may carry literally (RFC 3986 §3.3 minus `/ ; , ?`).
const PATH_SEGMENT_SAFE = new Set([..."$&+:=@"].map((c) => c.charCodeAt(0)));

function escape(text: string, keep: (b: number) => boolean, spaceAsPlus: boolean): string {
  let out = "";
  for (const b of encoder.encode(text)) {
    if (keep(b)) out += String.fromCharCode(b);
    else if (b === 0x20 && spaceAsPlus) out += "+";
    else out += "%" + HEX[b >> 4] + HEX[b & 15];
  }
  return out;
}

/** Go `url.QueryEscape`: keeps `A–Z a–z 0–9 - _ . ~`, space → `+`, the rest `%XX` (uppercase). */
export function queryEscape(text: string): string {
  return escape(text, isUnreserved, true);
}

/** Go `url.PathEscape`: like a query component, but `$ & + : = @` stay and space → `%20`. */
export function pathEscape(text: string): string {
  return escape(text, (b) => isUnreserved(b) || PATH_SEGMENT_SAFE.has(b), false);
}
