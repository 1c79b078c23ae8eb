// Flow table benchmarks (issue 10): lookups and inserts per second with 1M
// live flows, the key extraction and hash per frame, and bytes per flow.
//
// Run alone: npx tsc -p tsconfig.json && node --expose-gc dist/bench/flows.bench.js
// (a smoke run: add --quick, which gives each case 0.5 s instead of 5 s).
//
// Keys and hashes are made before timing, in the arrays a stage would pass
// (FLOW_KEY_WORDS words per slot), and each timed call handles one batch of
// 256 flows taken in turn from 1M random ones, so every lookup goes to a
// random place in a 60 MB table, as a busy router's would:
// Every case runs with 1M flows in its table.
//   lookup, hit        lookup() of flows that are in the table
//   lookup, miss       lookup() of flows that are not (a new flow's first probe)
//   track, hit         the per-packet call on a kept route: lookup + update
//   fill               insert() into an empty table up to 1M flows (timed once)
//   insert under a SYN flood   track() of new SYNs into a full table of
//                      embryonic flows: each evicts the oldest one
//   extract + hash     extractFlowKey + flowHash of 64-byte TCP frames in a batch

import Benchmark from 'benchmark';
import { pathToFileURL } from 'node:url';
import { FrameBatch, SLOT_SIZE } from '../src/dataplane/batch.js';
import { extractFlowKey, FLOW_KEY_WORDS, flowHash } from '../src/dataplane/flow-key.js';
import { FLOW_TABLE_DEFAULTS, FlowTable } from '../src/dataplane/flow-table.js';
import { ipv4Frame, tcpSegment } from '../src/packet/builder.js';
import { IPPROTO_TCP, TCP_ACK, TCP_SYN } from '../src/packet/layout.js';

const FLOWS = 1_000_000;
const BATCH = 256;
const SEED = 0x5eed;

/** A seeded PRNG (mulberry32), so every run times the same flows. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomFlows(count: number, random: () => number): { keys: Uint32Array; hashes: Uint32Array } {
  const keys = new Uint32Array(count * FLOW_KEY_WORDS);
  const hashes = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    const k = i * FLOW_KEY_WORDS;
    // Clients anywhere in 10.0.0.0/8 to VIP 192.168.1.33:443: keys in canonical order (client first).
    keys[k] = (0x0a000000 + Math.floor(random() * 2 ** 24)) >>> 0;
    keys[k + 1] = 0xc0a80121;
    keys[k + 2] = (((1024 + Math.floor(random() * 64_000)) << 16) | 443) >>> 0;
    keys[k + 3] = IPPROTO_TCP;
    hashes[i] = flowHash(keys, k, SEED);
  }
  return { keys, hashes };
}

export async function run(log: (line: string) => void = console.log): Promise<void> {
  const quick = process.argv.includes('--quick');
  const gc = (globalThis as { gc?: () => void }).gc;
  const live = randomFlows(FLOWS, seeded(1));
  const absent = randomFlows(FLOWS, seeded(2));

  gc?.();
  const rssBefore = process.memoryUsage().rss;
  const table = new FlowTable({ ...FLOW_TABLE_DEFAULTS });
  const capacity = table.capacity;
  log(`flows: table of ${capacity.toLocaleString('en')} flows: ${(table.buffer.byteLength / 2 ** 20).toFixed(1)} MiB, ` +
    `${(table.buffer.byteLength / capacity).toFixed(1)} bytes per flow (index included)`);

  let now = 0;
  const fillStart = performance.now();
  for (let i = 0; i < FLOWS; i++) {
    const entry = table.insert(live.keys, i * FLOW_KEY_WORDS, live.hashes[i], TCP_SYN, 5 + (i & 3), now);
    table.update(entry, TCP_SYN | TCP_ACK | 0x100, now);
    table.update(entry, TCP_ACK, now);
  }
  const fillMs = performance.now() - fillStart;
  gc?.();
  log(`flows: fill to ${FLOWS.toLocaleString('en')} established flows: ${((FLOWS / fillMs) * 1000 / 1e6).toFixed(2)} M flows/s ` +
    `(insert + 2 updates each, ${fillMs.toFixed(0)} ms); RSS growth ${((process.memoryUsage().rss - rssBefore) / 2 ** 20).toFixed(1)} MiB` +
    `${gc ? '' : ' (run with --expose-gc for a steadier figure)'}`);
  if (table.size !== FLOWS) throw new Error(`flows: ${table.size} flows in the table, expected ${FLOWS}`);

  // The same 1M flows as SYN-only flows in a table of their own, for the flood case.
  const flood = new FlowTable({ ...FLOW_TABLE_DEFAULTS, capacity: FLOWS });
  for (let i = 0; i < FLOWS; i++) flood.insert(absent.keys, i * FLOW_KEY_WORDS, absent.hashes[i], TCP_SYN, 5, 0);

  let cursor = 0;
  let floodCursor = 0;
  let floodPass = 0;
  let sink = 0;
  const nextBatch = () => {
    const first = cursor;
    cursor = (cursor + BATCH) % (FLOWS - BATCH);
    return first;
  };

  // 256 frames of one flow each, in a batch, for the per-frame cost of key + hash.
  const batch = new FrameBatch(BATCH);
  for (let i = 0; i < BATCH; i++) {
    const client = `10.${(i >> 8) & 0xff}.${i & 0xff}.7`;
    batch.push(0, ipv4Frame({
      dstMac: '02:00:00:00:00:01', srcMac: '02:00:00:00:00:02', src: client, dst: '192.168.1.33', protocol: IPPROTO_TCP,
      payload: tcpSegment({ src: client, dst: '192.168.1.33', srcPort: 40000 + i, dstPort: 443, flags: TCP_ACK, data: 6 }),
    }), 60);
  }
  const batchKeys = new Uint32Array(BATCH * FLOW_KEY_WORDS);
  const batchInfo = new Int32Array(BATCH);
  const batchHash = new Uint32Array(BATCH);

  const cases: [string, () => void][] = [
    ['lookup, hit', () => {
      const first = nextBatch();
      for (let i = first; i < first + BATCH; i++) sink += table.lookup(live.keys, i * FLOW_KEY_WORDS, live.hashes[i], TCP_ACK, now);
    }],
    ['lookup, miss', () => {
      const first = nextBatch();
      for (let i = first; i < first + BATCH; i++) sink += table.lookup(absent.keys, i * FLOW_KEY_WORDS, absent.hashes[i], TCP_ACK, now);
    }],
    ['track, hit (lookup + update)', () => {
      const first = nextBatch();
      for (let i = first; i < first + BATCH; i++) sink += table.track(live.keys, i * FLOW_KEY_WORDS, live.hashes[i], TCP_ACK, 5, now);
    }],
    ['insert under a SYN flood (full table, each evicts an embryonic flow)', () => {
      // Each pass inserts the other million flows, so every SYN is new and evicts the oldest.
      const source = floodPass % 2 === 0 ? live : absent;
      const end = Math.min(floodCursor + BATCH, FLOWS);
      now++;
      for (let i = floodCursor; i < end; i++) sink += flood.track(source.keys, i * FLOW_KEY_WORDS, source.hashes[i], TCP_SYN, 5, now);
      floodCursor = end === FLOWS ? 0 : end;
      if (floodCursor === 0) floodPass++;
    }],
    ['extract + hash, 64-byte TCP frames', () => {
      for (let i = 0; i < BATCH; i++) {
        batchInfo[i] = extractFlowKey(batch.data, i * SLOT_SIZE, batch.length[i], batchKeys, i * FLOW_KEY_WORDS);
        batchHash[i] = flowHash(batchKeys, i * FLOW_KEY_WORDS, SEED);
      }
      sink += batchHash[BATCH - 1];
    }],
  ];

  await new Promise<void>((resolve) => {
    const suite = new Benchmark.Suite('flows');
    for (const [name, fn] of cases) suite.add(name, fn, quick ? { maxTime: 0.5, minSamples: 5 } : {});
    suite
      .on('cycle', (event: Benchmark.Event) => {
        const target = event.target;
        const perSecond = (target.hz ?? 0) * BATCH;
        log(`flows: ${target.name}: ${(perSecond / 1e6).toFixed(2)} M/s (±${(target.stats?.rme ?? 0).toFixed(1)}%)`);
      })
      .on('complete', () => resolve())
      .run({ async: false });
  });
  if (batchInfo[0] < 0) throw new Error('flows: the benchmark frames have no flow key');
  const { counters } = flood.summary();
  log(`flows: the flood case: ${counters.created.toLocaleString('en')} SYNs into a full table of ${flood.size.toLocaleString('en')}, ` +
    `${counters.evictedTcpEmbryonic.toLocaleString('en')} embryonic flows evicted, ${counters.tableFull} refused`);
  // Keeps the results observable so no loop is optimised away.
  if (sink === 0.5) log(String(sink));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run();
}
