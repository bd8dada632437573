'use strict';
// Store files for the benchmark, written directly (records with the fields JsonFileKeyStore
// gives them), which is much faster than 100,000 calls of store.create().
const fs = require('node:fs');
const path = require('node:path');
const { generateKey, hashKey, displayPrefix } = require('./lib');

/**
 * Writes a JSON store of `count` keys to `file`; returns the first `keep` plain keys (the only
 * ones kept: the others exist only as hashes, as in a real store). `extra(i)` adds fields to key i.
 */
function writeStore(file, count, keep = 1, extra = () => ({})) {
  const now = Date.now() / 1000;
  const keys = [];
  const records = new Array(count);
  for (let i = 0; i < count; i++) {
    const key = generateKey();
    if (i < keep) keys.push(key);
    records[i] = {
      owner: `bench-owner-${i}`,
      created_at: now,
      usage_count: 0,
      requests_today: 0,
      requests_day: 0,
      last_used: null,
      revoked: false,
      key_hash: hashKey(key),
      key_prefix: displayPrefix(key),
      ...extra(i),
    };
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(records, null, 2) + '\n');
  return keys;
}

/**
 * The store file `from` (indented, as writeStore and existing deployments lay it out) rewritten to
 * `to` with one record a line, as JsonFileKeyStore writes it: the file a store has after its first
 * write, whose unchanged lines later writes copy instead of encoding them anew.
 */
function writeStoreAsWritten(from, to) {
  const records = JSON.parse(fs.readFileSync(from, 'utf8'));
  const lines = records.map((record) => '  ' + JSON.stringify(record));
  fs.writeFileSync(to, records.length === 0 ? '[]\n' : '[\n' + lines.join(',\n') + '\n]\n');
}

/** A fresh copy of a store file in its own directory (its own lock, ledger and temp files). */
function copyStore(file, dir) {
  fs.mkdirSync(dir, { recursive: true });
  const copy = path.join(dir, 'api_keys.json');
  fs.copyFileSync(file, copy);
  return copy;
}

module.exports = { writeStore, writeStoreAsWritten, copyStore };
