#!/usr/bin/env node
// Builds dist/cjs with tsc, then a thin ESM entry that re-exports the CommonJS build, so that
// `import` and `require` share one instance of the library (no dual-package hazard).
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist');
fs.rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.json')], {
  stdio: 'inherit',
});

const cjs = require(path.join(dist, 'cjs', 'index.js'));
const names = Object.keys(cjs)
  .filter((n) => n !== 'default' && n !== '__esModule')
  .sort();
const esmDir = path.join(dist, 'esm');
fs.mkdirSync(esmDir, { recursive: true });
fs.writeFileSync(
  path.join(esmDir, 'index.mjs'),
  `import cjs from '../cjs/index.js';\n\nexport const {\n${names.map((n) => `  ${n},`).join('\n')}\n} = cjs;\n`,
);
fs.writeFileSync(path.join(esmDir, 'index.d.mts'), `export * from '../cjs/index.js';\n`);

const cli = path.join(dist, 'cjs', 'cli', 'index.js');
if (fs.existsSync(cli)) fs.chmodSync(cli, 0o755);
