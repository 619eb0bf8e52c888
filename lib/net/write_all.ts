/** Anything with Deno's `write` contract: it may take only part of the buffer. */
export interface PartialWriter {
  write(p: Uint8Array): Promise<number>;
}

/** Writes all of `data`. */
export async function writeAll(w: PartialWriter, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await w.write(data.subarray(off));
}
