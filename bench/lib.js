'use strict';
// The library under test: the snapshot of dist/cjs that bench/run.js takes at start (so that a
// rebuild during the run can neither change nor remove it), else dist/cjs itself.
module.exports = require(process.env.DAYMIND_BENCH_LIB || '../dist/cjs');
