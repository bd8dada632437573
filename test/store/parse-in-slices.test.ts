import { parseRecordsInSlices } from '../../src/store/parse-in-slices';
import { parseRecords, type RawRecord } from '../../src/store/record';
import { WorkSlicer } from '../../src/store/slicer';
import { everyTurn } from '../helpers';

const hash = (i: number): string => i.toString(16).padStart(64, '0');
const record = (i: number, extra: RawRecord = {}): RawRecord => ({
  owner: i % 5 ? `owner-${i}` : `Zoë ${i}`,
  usage_count: i,
  key_hash: hash(i),
  ...extra,
});
/** A document as serializeRecords lays it out: one record a line. */
const written = (raws: RawRecord[]): string => '[\n' + raws.map((r) => '  ' + JSON.stringify(r)).join(',\n') + '\n]\n';

/** Parses with a turn of the event loop after every chunk; returns the records and how many turns ran. */
async function parse(text: string): Promise<{ records: RawRecord[]; turns: number }> {
  const { seen, result } = await everyTurn(
    () => 1,
    () => parseRecordsInSlices(Buffer.from(text), new WorkSlicer(0)),
  );
  return { records: result, turns: seen.length };
}

async function parseError(text: string): Promise<string> {
  return parse(text).then(
    () => 'parsed',
    (err: Error) => err.message,
  );
}

function wholeError(text: string): string {
  try {
    parseRecords(text);
    return 'parsed';
  } catch (err) {
    return (err as Error).message;
  }
}

describe('parseRecordsInSlices', () => {
  test('a large written document parses in many slices to exactly what JSON.parse gives', async () => {
    const raws = Array.from({ length: 5_000 }, (_, i) => record(i, i % 97 ? {} : { meta: { tier: 'pro', tags: ['a', 'b'] } }));
    const { records, turns } = await parse(written(raws));
    expect(records).toEqual(raws);
    expect(turns).toBeGreaterThan(5); // about 600 KB in chunks of 64 KB, a turn after each
  });

  test.each([
    ['one record over several lines (indented)', (raws: RawRecord[]) => JSON.stringify(raws, null, 2) + '\n'],
    // Chunks are cut at the first ",\n" past 64 KB: here most such places are inside a record.
    ['nested values over lines that end in ",\\n"', (raws: RawRecord[]) => written(raws).replaceAll('"meta":{"a":1,', '"meta":{"a":1,\n')],
    ['no newline at the end', (raws: RawRecord[]) => written(raws).slice(0, -1)],
    ['a single record', (raws: RawRecord[]) => written(raws.slice(0, 1))],
  ])('another layout (%s) gives what JSON.parse gives', async (_, layout) => {
    const raws = Array.from({ length: 3_000 }, (_, i) => record(i, { meta: { a: 1, b: 2 } }));
    const text = layout(raws);
    expect((await parse(text)).records).toEqual(JSON.parse(text));
  });

  test.each([
    ['a comma before the closing bracket', (text: string) => text.replace(/\n\]\n$/, ',\n]\n')],
    ['an empty element between two commas', (text: string) => text.replace('},\n', '},\n,\n')],
    ['a line cut short', (text: string) => text.replace(/"owner-2999",/, '"owner-2999"')],
    ['not an array', () => '{\n  "a": 1\n}\n'],
  ])('an invalid document (%s) is refused with the error of a whole parse', async (_, spoil) => {
    const text = spoil(written(Array.from({ length: 3_000 }, (_, i) => record(i))));
    const expected = wholeError(text);
    expect(expected).not.toBe('parsed');
    expect(await parseError(text)).toBe(expected);
  });

  test('a bad record deep in the document is named by its position in the whole document', async () => {
    const raws = Array.from({ length: 3_000 }, (_, i) => record(i, i === 2_345 ? { usage_count: 'many' } : {}));
    expect(await parseError(written(raws))).toBe('record 2345 has a non-numeric "usage_count"');
  });
});
