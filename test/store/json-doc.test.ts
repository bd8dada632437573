import { StoreDoc, buildState, installEdits, serializeRecords } from '../../src/store/json/doc';
import { hashKey } from '../../src';

const context = { hashCache: new Map<string, string>(), keyPrefix: 'dm_' };
const records = () => ['a', 'b', 'c'].map((k, i) => ({ owner: `o${i}`, usage_count: i, key_hash: hashKey(k) }));

describe('StoreDoc', () => {
  test('edits copy the records they change and leave the state alone until installed', () => {
    const state = buildState(records(), context);
    const before = state.raws.slice();
    const doc = new StoreDoc(state, context.hashCache);
    doc.edit(hashKey('b'))!.usage_count = 7;
    doc.add({ owner: 'new', usage_count: 0, key_hash: hashKey('d') });
    expect(state.raws).toEqual(before);
    expect(state.index.get(hashKey('b'))?.usage_count).toBe(1);
    expect(state.index.has(hashKey('d'))).toBe(false);
    installEdits(state, doc, context);
    expect(state.index.get(hashKey('b'))?.usage_count).toBe(7);
    expect(state.index.get(hashKey('d'))?.owner).toBe('new');
    expect(state.positions.get(hashKey('d'))).toBe(3);
    expect(before[1]!.usage_count).toBe(1); // the old record object is untouched
  });
});

describe('serializeRecords', () => {
  test('one record a line, parsing back to the records, and again after an edit (the changed line only is new)', () => {
    const state = buildState(records(), context);
    const first = serializeRecords(state.raws);
    expect(first.split('\n')).toHaveLength(3 + 3);
    expect(JSON.parse(first)).toEqual(records());
    const doc = new StoreDoc(state, context.hashCache);
    doc.edit(hashKey('c'))!.usage_count = 40;
    installEdits(state, doc, context);
    const second = serializeRecords(state.raws);
    expect(JSON.parse(second)).toEqual(records().map((r, i) => (i === 2 ? { ...r, usage_count: 40 } : r)));
    expect(second.split('\n').slice(0, 3)).toEqual(first.split('\n').slice(0, 3));
    expect(serializeRecords([])).toBe('[]\n');
  });
});
