// `npm run bench`: every in-memory benchmark, one after another, each with
// its own warm-up (benchmark.js), each writing its results file
// (bench/results/{lpm,pipeline,memory}-TIMESTAMP.json). The lab benchmarks
// (bench/reroute.ts, bench/failover.ts, bench/forwarding.ts) build network
// namespaces and take minutes; they run on their own, see bench/README.md.
// Then `node dist/bench/summary.js --write` rebuilds bench/README.md's summary.

import { cpus } from 'node:os';
import { run as lpm } from './lpm.bench.js';
import { run as memory } from './memory.js';
import { run as pipeline } from './pipeline.bench.js';

console.log(`vipr benchmarks, ${new Date().toISOString()}, node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} x${cpus().length}`);
const files = [await lpm(), await pipeline(), await memory()];
console.log(`results:\n${files.map((f) => `  ${f}`).join('\n')}`);
