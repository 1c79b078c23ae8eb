#!/usr/bin/env node
// Summarise a vitest JSON report (--reporter=json --outputFile.json=FILE) as
// one closing line on stdout:
//
//   N passed, N failed            or    N passed, N failed, N skipped
//
//   node scripts/summarize-vitest.mjs REPORT.json [VITEST_EXIT_CODE] [REPORT2.json VITEST_EXIT_CODE2 ...]
//
// Several reports (runs of one suite, e.g. the lab tests again with two
// data-plane workers) add up into the one line.
// Counts tests: passed; failed; skipped/todo/pending/disabled. A test file that
// failed without a failed test in it (import error, error in a hook) counts as
// one failed test, and so does a run that vitest itself called unsuccessful
// (or exited non-zero) with no failure counted otherwise, so the line never
// says "0 failed" about a run that failed. Notes go to stderr. Exit status:
// 0 when nothing failed, 1 otherwise; a missing or unreadable report prints
// "0 passed, 1 failed" and exits 1.
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
if (args.length === 0) {
  console.error('summarize-vitest: usage: summarize-vitest.mjs REPORT.json [VITEST_EXIT_CODE] [REPORT2.json CODE2 ...]');
  console.log('0 passed, 1 failed');
  process.exit(1);
}

function bail(why) {
  console.error(`summarize-vitest: ${why}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}

let passed = 0;
let failed = 0;
let skipped = 0;
for (let a = 0; a < args.length; a += 2) {
  const file = args[a];
  const codeArg = args[a + 1];
  const vitestCode = codeArg === undefined ? 0 : Number(codeArg);
  let report;
  try {
    report = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    bail(`no usable report at ${file} (${e instanceof Error ? e.message : String(e)}): vitest did not finish`);
  }
  if (!report || typeof report !== 'object' || !Array.isArray(report.testResults)) {
    bail(`${file} is not a vitest JSON report`);
  }
  let failedInRun = 0;
  for (const suite of report.testResults) {
    const tests = Array.isArray(suite?.assertionResults) ? suite.assertionResults : [];
    let failedHere = 0;
    for (const t of tests) {
      switch (t?.status) {
        case 'passed':
          passed++;
          break;
        case 'failed':
          failedInRun++;
          failedHere++;
          break;
        default: // skipped, pending, todo, disabled
          skipped++;
      }
    }
    if (suite?.status === 'failed' && failedHere === 0) {
      failedInRun++;
      const msg = String(suite.message ?? '').split('\n')[0];
      console.error(`summarize-vitest: ${suite.name ?? 'a test file'} failed outside any test${msg ? `: ${msg}` : ''}`);
    }
  }
  if (failedInRun === 0 && (report.success === false || (Number.isFinite(vitestCode) && vitestCode !== 0))) {
    failedInRun = 1;
    console.error(
      `summarize-vitest: vitest reported failure (exit ${codeArg ?? '?'}, success=${report.success}) in ${file} ` +
        'with no failed test: counted as one failure (unhandled error, or no test files?)',
    );
  }
  failed += failedInRun;
}

console.log(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 ? 1 : 0);
