import type { WorkSlicer } from '../internal/slicer';

/** About how many bytes of a document one JSON.parse call takes (a few hundred records). */
const CHUNK_BYTES = 64 * 1024;
const ELEMENT_END = Buffer.from(',\n');
const NEWLINE = 0x0a;
const CLOSE = { '[': 0x5d, '{': 0x7d } as const;

/** Whether a document has the frame this library writes: "[\n" or "{\n" first, "\n]\n" or "\n}\n" last. */
export function isFramed(bytes: Buffer, open: '[' | '{'): boolean {
  const n = bytes.length;
  return (
    n >= 5 &&
    bytes[0] === open.charCodeAt(0) &&
    bytes[1] === NEWLINE &&
    bytes[n - 3] === NEWLINE &&
    bytes[n - 2] === CLOSE[open] &&
    bytes[n - 1] === NEWLINE
  );
}

/**
 * A JSON array or object laid out as this library writes its files ("[\n" or "{\n" first, elements
 * or members separated by ",\n", "\n]\n" or "\n}\n" last), parsed a chunk at a time with the event
 * loop let in between (a usage history day file of many keys). Returns each chunk's value (an array or an object), in order.
 *
 * Chunks are cut only at ",\n". A JSON string cannot hold a raw newline, so each cut is either
 * between two members of the outer value or inside a nested value, and a cut inside a nested value
 * leaves a chunk with an unclosed bracket, which does not parse. When every chunk parses to a
 * non-empty value, together they are exactly what JSON.parse of the whole document gives (an
 * object's later duplicate wins, as in JSON.parse, when the caller merges the chunks in order).
 * Returns undefined otherwise (another layout, a hand-edited or corrupt file): the caller then
 * parses the whole document at once, and reports its error, if any.
 */
export async function parseChunksInSlices(bytes: Buffer, open: '[' | '{', slicer: WorkSlicer): Promise<unknown[] | undefined> {
  if (!isFramed(bytes, open)) return undefined;
  const close = CLOSE[open];
  const chunks: unknown[] = [];
  const end = bytes.length - 3; // the members run from after the opening line to before the closing one
  let start = 2;
  for (;;) {
    const cut = start + CHUNK_BYTES < end ? bytes.indexOf(ELEMENT_END, start + CHUNK_BYTES) : -1;
    const stop = cut === -1 ? end : cut;
    let chunk: unknown;
    try {
      chunk = JSON.parse(open + bytes.toString('utf8', start, stop) + String.fromCharCode(close));
    } catch {
      return undefined;
    }
    if (open === '[' ? (chunk as unknown[]).length === 0 : Object.keys(chunk as object).length === 0) return undefined;
    chunks.push(chunk);
    if (stop === end) return chunks;
    start = stop + ELEMENT_END.length;
    if (start > end) return undefined; // a comma before the closing line
    if (slicer.due()) await slicer.yield();
  }
}
