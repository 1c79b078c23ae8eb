// `npm run bench`: every in-memory benchmark, one after another, each with
// its own warm-up (benchmark.js). The lab benchmarks (bench/reroute.ts,
// bench/failover.ts, bench/forwarding.ts) build network namespaces and take
// minutes; they run on their own, see bench/README.md.

import { cpus } from 'node:os';
import { run as lpm } from './lpm.bench.js';
import { run as memory } from './memory.js';
import { run as pipeline } from './pipeline.bench.js';

console.log(`vipr benchmarks, ${new Date().toISOString()}, node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} x${cpus().length}`);
await lpm();
await pipeline();
await memory();
