import { EncodedSlices, StoreDoc, seedSlices, serializeRecords } from '../../src/store/json-doc';
import type { RawRecord } from '../../src/store/record';

const record = (i: number, owner = `owner-${i}`): RawRecord => ({
  owner,
  created_at: 1_700_000_000 + i,
  usage_count: i,
  requests_today: 0,
  requests_day: 0,
  last_used: null,
  revoked: false,
  key_hash: i.toString(16).padStart(64, '0'),
  key_prefix: `dm_${i}`,
});

/** What the file must hold: one record per line, as JSON.stringify would give each. */
const expected = (raws: readonly RawRecord[]): string =>
  raws.length === 0 ? '[]\n' : '[\n' + raws.map((r) => '  ' + JSON.stringify(r)).join(',\n') + '\n]\n';

const text = async (raws: readonly RawRecord[], slices: EncodedSlices): Promise<string> =>
  Buffer.concat(await serializeRecords(raws, slices)).toString('utf8');

describe('serializeRecords', () => {
  test('writes one record per line, and again after edits, additions and removals reusing the cached slices', async () => {
    const slices = new EncodedSlices();
    let raws = Array.from({ length: 2_345 }, (_, i) => record(i));
    expect(await text(raws, slices)).toBe(expected(raws));
    expect(JSON.parse(await text(raws, slices))).toEqual(raws);

    // Records are replaced, never changed in place: edit a few in several slices, with multi-byte text.
    raws = raws.slice();
    for (const at of [0, 999, 1_000, 1_500, 2_344]) raws[at] = { ...raws[at]!, usage_count: 42, owner: `Zoë ✓ ${at}` };
    expect(await text(raws, slices)).toBe(expected(raws));

    raws = [...raws, record(9_000, 'новый'), record(9_001)];
    expect(await text(raws, slices)).toBe(expected(raws));

    raws = raws.filter((_, i) => i !== 10); // every later record moves up one place
    expect(await text(raws, slices)).toBe(expected(raws));

    raws = raws.slice(0, 900);
    expect(await text(raws, slices)).toBe(expected(raws));
    expect(await text([], slices)).toBe('[]\n');
    raws = [record(1)];
    expect(await text(raws, slices)).toBe(expected(raws));
  });

  test('seeded from the file it loaded, the next write copies the unchanged lines as the file had them', async () => {
    const raws = Array.from({ length: 2_500 }, (_, i) => record(i, i % 7 ? `owner-${i}` : `Zoë ${i}`));
    // One record a line, but spaced unlike JSON.stringify: copied lines keep their own bytes.
    const file = '[\n' + raws.map((r) => '  ' + JSON.stringify(r).replace(/,"/g, ', "')).join(',\n') + '\n]\n';
    const slices = new EncodedSlices();
    slices.use(seedSlices(Buffer.from(file), raws));
    expect(await text(raws, slices)).toBe(file);
    const edited = raws.slice();
    edited[1_234] = { ...raws[1_234]!, usage_count: 99 };
    const written = await text(edited, slices);
    expect(JSON.parse(written)).toEqual(edited);
    expect(written.split('\n')[1_235]).toBe('  ' + JSON.stringify(edited[1_234]) + ',');
    expect(written.split('\n')[1_236]).toBe(file.split('\n')[1_236]);
  });

  test.each([
    ['one record over several lines (JSON.stringify with indentation)', (raws: RawRecord[]) => JSON.stringify(raws, null, 2) + '\n'],
    [
      'two records on one line',
      (raws: RawRecord[]) =>
        '[\n  ' + JSON.stringify(raws[0]) + ', ' + JSON.stringify(raws[1]) + ',\n  ' + JSON.stringify(raws[2]) + ',\n  {"x":1}\n]\n',
    ],
    ['no newline at the end', (raws: RawRecord[]) => '[\n' + raws.map((r) => '  ' + JSON.stringify(r)).join(',\n') + '\n]'],
  ])('a file in another layout (%s) seeds nothing: the write is the standard one', async (_, layout) => {
    const raws = [record(1), record(2), record(3), record(4)];
    const slices = new EncodedSlices();
    slices.use(seedSlices(Buffer.from(layout(raws)), raws));
    expect(await text(raws, slices)).toBe(expected(raws));
  });
});

describe('StoreDoc', () => {
  const base = (): RawRecord[] => Array.from({ length: 5 }, (_, i) => record(i));
  const positions = (raws: RawRecord[]) => new Map(raws.map((r, i) => [r.key_hash as string, i]));

  test('edits copy the records they change and leave the base alone until installed, without copying the whole array', () => {
    const raws = base();
    const original = raws[2];
    const doc = new StoreDoc(raws, positions(raws), new Map());
    doc.edit(raws[2]!.key_hash as string)!.usage_count = 99;
    expect(raws[2]).toBe(original); // what requests read is untouched until the write has succeeded
    expect(doc.record(2)?.usage_count).toBe(99);
    expect(doc.installInto(raws)).toBe(raws); // the same array, with the edited record in place
    expect(raws[2]?.usage_count).toBe(99);
    expect(original?.usage_count).toBe(2);
  });

  test('a document used whole (a rewrite, an added record) is a copy, edits included', () => {
    const raws = base();
    const doc = new StoreDoc(raws, positions(raws), new Map());
    doc.edit(raws[1]!.key_hash as string)!.usage_count = 50;
    doc.add(record(7));
    doc.edit(raws[3]!.key_hash as string)!.usage_count = 70;
    const whole = doc.raws;
    expect(whole).not.toBe(raws);
    expect(whole.map((r) => r.usage_count)).toEqual([0, 50, 2, 70, 4, 7]);
    expect(raws.map((r) => r.usage_count)).toEqual([0, 1, 2, 3, 4]);
    expect(doc.installInto(raws)).toBe(whole);
  });
});
