/**
 * A minimal DER encoder (ITU-T X.690) for the few ASN.1 types an X.509 certificate needs. Every
 * function returns the complete TLV bytes.
 */
import { concatBytes } from "../bytes.ts";

/** Any tag with its content; the length in definite form. */
export function tlv(tag: number, content: Uint8Array): Uint8Array<ArrayBuffer> {
  const n = content.length;
  const len = n < 0x80
    ? [n]
    : n < 0x100
    ? [0x81, n]
    : n < 0x10000
    ? [0x82, n >> 8, n & 0xff]
    : null;
  if (!len) throw new RangeError("DER value too long");
  const out = new Uint8Array(1 + len.length + n);
  out[0] = tag;
  out.set(len, 1);
  out.set(content, 1 + len.length);
  return out;
}

export const sequence = (...items: Uint8Array[]) => tlv(0x30, concatBytes(items));
export const set = (...items: Uint8Array[]) => tlv(0x31, concatBytes(items));
export const octetString = (bytes: Uint8Array) => tlv(0x04, bytes);
export const utf8String = (text: string) => tlv(0x0c, new TextEncoder().encode(text));
export const boolean = (value: boolean) => tlv(0x01, new Uint8Array([value ? 0xff : 0]));
/** `[n]` EXPLICIT around one value. */
export const explicit = (n: number, value: Uint8Array) => tlv(0xa0 | n, value);
/** `[n]` IMPLICIT of a primitive type (SAN's dNSName is 2, iPAddress 7). */
export const implicit = (n: number, bytes: Uint8Array) => tlv(0x80 | n, bytes);

/** A non-negative INTEGER from big-endian bytes: minimal, with a 0 byte when the top bit is set. */
export function unsignedInteger(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const body = bytes.subarray(i);
  return tlv(0x02, body[0] & 0x80 ? concatBytes([new Uint8Array([0]), body]) : body);
}

export const smallInteger = (n: number) => unsignedInteger(new Uint8Array([n]));

/** A BIT STRING of whole bytes, or of named bits (`unusedBits` low bits of the last byte unused). */
export function bitString(bytes: Uint8Array, unusedBits = 0): Uint8Array<ArrayBuffer> {
  return tlv(0x03, concatBytes([new Uint8Array([unusedBits]), bytes]));
}

/** An OBJECT IDENTIFIER from its dotted form. */
export function oid(dotted: string): Uint8Array<ArrayBuffer> {
  const arcs = dotted.split(".").map(Number);
  const bytes = [40 * arcs[0] + arcs[1]];
  for (const arc of arcs.slice(2)) {
    const groups = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) {
      groups.unshift((v & 0x7f) | 0x80);
    }
    bytes.push(...groups);
  }
  return tlv(0x06, new Uint8Array(bytes));
}

/** UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5), to the second, in UTC. */
export function time(date: Date): Uint8Array<ArrayBuffer> {
  const iso = date.toISOString(); // 2026-12-03T07:04:21.000Z
  const digits = iso.slice(0, 19).replace(/[-:T]/g, "") + "Z";
  const year = date.getUTCFullYear();
  const ascii = (s: string) => new TextEncoder().encode(s);
  return year < 2050 ? tlv(0x17, ascii(digits.slice(2))) : tlv(0x18, ascii(digits));
}
