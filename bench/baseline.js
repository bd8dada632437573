'use strict';
// `--baseline <git ref>`: the library as built from another commit, measured in the same run as
// the current build (the `default_before` scenario), so that a change to the request path is
// judged side by side with the code it replaces.
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

module.exports = { buildBaseline };
