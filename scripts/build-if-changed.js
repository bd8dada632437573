#!/usr/bin/env node
// Builds the library (dist/) and the examples (build/) unless they are already built from the
// current sources: `npm run example` starts in about a second once the first build is done.
// A stamp file, written when both builds have succeeded, holds the time they started; a source,
// tsconfig or package file changed since then (or a missing output) means building again.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const STAMP = path.join(root, 'build', '.built-from-sources');
const INPUTS = ['src', 'examples', 'scripts/build.js', 'tsconfig.json', 'tsconfig.examples.json', 'package.json', 'package-lock.json'];
const OUTPUTS = ['dist/cjs/index.js', 'dist/esm/index.mjs', 'dist/cjs/cli/index.js', 'build/examples/server.js'];

/** The newest modification time (ms) of a file, or of any file under a directory; 0 when absent. */
function newestMtime(file) {
  let stat;
  try {
    stat = fs.statSync(file);
  } catch {
    return 0;
  }
  if (!stat.isDirectory()) return stat.mtimeMs;
  return fs.readdirSync(file).reduce((newest, name) => Math.max(newest, newestMtime(path.join(file, name))), stat.mtimeMs);
}

/** Why a build is needed, or null when the outputs are up to date. */
function reasonToBuild() {
  if (OUTPUTS.some((file) => !fs.existsSync(path.join(root, file))) || !fs.existsSync(STAMP)) return 'first build';
  const built = fs.statSync(STAMP).mtimeMs;
  const changed = INPUTS.find((input) => newestMtime(path.join(root, input)) >= built);
  return changed ? `${changed} changed` : null;
}

function buildIfChanged() {
  const reason = reasonToBuild();
  if (!reason) return;
  console.log(`Building dist/ and build/ (${reason})...`);
  const started = new Date(); // a source saved during the build is newer than the stamp
  const node = (args) => execFileSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  node([path.join(root, 'scripts', 'build.js')]); // as `npm run build`
  node([require.resolve('typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.examples.json')]); // as `npm run build:examples`
  fs.writeFileSync(STAMP, `${started.toISOString()}\n`);
  fs.utimesSync(STAMP, started, started);
}

try {
  buildIfChanged();
} catch (err) {
  if (err.status === undefined) console.error(err.message); // else the build has printed what failed
  process.exit(1);
}
