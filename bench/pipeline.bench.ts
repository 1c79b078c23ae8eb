// The whole per-packet pipeline in memory: parse, validate, lookup, rewrite,
// checksum, per-port transmit grouping, over batches of 64-byte frames.
// The same article-router fixture the unit tests use; MemoryPorts count what
// is sent instead of keeping it. Each round first copies every frame back
// into its slot (standing in for the one copy the receive path makes), since
// forwarding rewrites frames in place.
//
// Run alone: npx tsc -p tsconfig.json && node dist/bench/pipeline.bench.js [--out FILE]
// Writes bench/results/pipeline-TIMESTAMP.json (bench/lib/results.ts).

import Benchmark from 'benchmark';
import { SLOT_SIZE } from '../src/dataplane/batch.js';
import { ipv4Frame, udpPayload } from '../src/packet/builder.js';
import { articleRouter, MAC, UP0 } from '../test/fixtures/article-router.js';
import { isMain, round } from './lib/program.js';
import { BenchRun, figure } from './lib/results.js';

const BATCH = 256;

export interface PipelineResult {
  name: string;
  framesPerSecond: number;
  rme: number;
}

function setup(dsts: string[]) {
  const r = articleRouter({ dataplane: { batchSize: BATCH, workers: 0 } }, { keepSent: false });
  r.resolveAll();
  const batch = r.router.batch;
  // 64-byte frames: 14 Ethernet + 20 IP + 8 UDP + 18 data = 60, plus 4 FCS on the wire.
  const frames: Uint8Array[] = [];
  const lengths = new Uint16Array(BATCH);
  for (let i = 0; i < BATCH; i++) {
    const frame = ipv4Frame({
      dstMac: MAC.up0, srcMac: MAC.client, src: `10.0.0.${2 + (i % 200)}`, dst: dsts[i % dsts.length], ttl: 64,
      payload: udpPayload(18, 40000 + i, 9999), protocol: 17,
    });
    frames.push(new Uint8Array(frame));
    lengths[i] = frame.length;
  }
  const round = () => {
    for (let i = 0; i < BATCH; i++) batch.data.set(frames[i], i * SLOT_SIZE);
    batch.length.set(lengths);
    batch.port.fill(UP0, 0, BATCH);
    batch.count = BATCH;
    r.router.process();
  };
  return { r, round };
}

function measure(log: (line: string) => void): Promise<PipelineResult[]> {
  const cases: [string, string[]][] = [
    ['one VIP (192.168.1.33)', ['192.168.1.33']],
    ['four VIPs (four next hops)', ['192.168.1.33', '192.168.1.65', '192.168.1.97', '192.168.1.129']],
  ];
  const results: PipelineResult[] = [];
  return new Promise((resolve) => {
    const suite = new Benchmark.Suite('pipeline');
    for (const [name, dsts] of cases) {
      const { r, round } = setup(dsts);
      suite.add(name, round, {
        onComplete() {
          // Sanity: every frame was forwarded, none dropped.
          const drops = r.router.counters.drops.reduce((a, b) => a + b, 0);
          if (drops !== 0) throw new Error(`pipeline benchmark dropped ${drops} frames`);
        },
      });
    }
    suite.on('cycle', (event: Benchmark.Event) => {
      const bench = event.target as unknown as Benchmark;
      const framesPerSecond = (bench.hz ?? 0) * BATCH;
      results.push({ name: String(bench.name), framesPerSecond, rme: bench.stats?.rme ?? 0 });
      log(`pipeline, 64-byte frames, batch ${BATCH}, ${bench.name}: ${(framesPerSecond / 1e6).toFixed(2)} M frames/s per core (±${(bench.stats?.rme ?? 0).toFixed(1)}%)`);
    });
    suite.on('complete', () => resolve(results));
    suite.run({ async: false });
  });
}

/**
 * Runs the pipeline benchmark and writes its results file (`resultsFile`, or
 * bench/results/pipeline-TIMESTAMP.json); returns its path. No anchor: nothing
 * else runs these stages; the target is 15 M frames/s per core.
 */
export async function run(resultsFile?: string): Promise<string> {
  const bench = new BenchRun('pipeline');
  const results = await measure(console.log);
  const figures = results.map((r, i) =>
    figure({
      id: i === 0 ? 'pipeline.one-vip' : 'pipeline.four-vips',
      measure: `whole pipeline in memory, 64-byte frames, batch ${BATCH}: ${r.name}`,
      unit: 'frames/s',
      better: 'higher',
      vipr: { label: `one core (±${round(r.rme, 1)}%)`, value: Math.round(r.framesPerSecond), bound: 'exact' },
      target: '≥ 15 M frames/s per core',
    }),
  );
  const file = await bench.write(figures, { batch: BATCH, results }, resultsFile);
  console.log(`pipeline: results: ${file}`);
  return file;
}

if (isMain(import.meta.url)) {
  const out = process.argv.indexOf('--out');
  await run(out > 0 ? process.argv[out + 1] : undefined);
}
