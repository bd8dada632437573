'use strict';
// The library under test: a snapshot of this build for the whole run, and with `--baseline <git
// ref>` the library as built from another commit, measured in the same run as the current build
// (the `default_before` scenario), so that a change to the request path is judged side by side
// with the code it replaces.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');

/**
 * Builds `ref`'s src/ with this checkout's TypeScript into a directory under node_modules/.cache
 * (so that it finds the dependencies), and returns the path of its CommonJS entry directory.
 */
function buildBaseline(ref, cacheDir) {
  const dir = fs.mkdtempSync(path.join(cacheDir, 'daymind-baseline-'));
  const archive = execFileSync('git', ['archive', '--format=tar', ref, 'src', 'tsconfig.json'], { cwd: ROOT, maxBuffer: 1 << 30 });
  execFileSync('tar', ['-x', '-C', dir], { input: archive });
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(dir, 'tsconfig.json')], { stdio: 'inherit' });
  const commit = execFileSync('git', ['rev-parse', '--short', ref], { cwd: ROOT, encoding: 'utf8' }).trim();
  return { dir, lib: path.join(dir, 'dist', 'cjs'), commit };
}

/**
 * Copies dist/cjs for the whole run (children load it through bench/lib.js), so that every
 * scenario measures the same build even when dist/ is rebuilt meanwhile. The copy sits under
 * node_modules/.cache so that the library still finds its dependencies. Returns the copy's directory.
 */
function snapshotLibrary() {
  const dist = path.join(ROOT, 'dist', 'cjs');
  if (!fs.existsSync(path.join(dist, 'index.js'))) {
    throw new Error('dist/cjs is missing: run `npm run build` first (or `npm run bench`, which builds)');
  }
  const cache = path.join(ROOT, 'node_modules', '.cache');
  fs.mkdirSync(cache, { recursive: true });
  const snapshot = fs.mkdtempSync(path.join(cache, 'daymind-bench-'));
  fs.cpSync(dist, path.join(snapshot, 'cjs'), { recursive: true });
  process.env.DAYMIND_BENCH_LIB = path.join(snapshot, 'cjs');
  require('./lib');
  return snapshot;
}

module.exports = { buildBaseline, snapshotLibrary };
