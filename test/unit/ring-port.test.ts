// The packet-ring port's contract with its addon, without a network: the
// counter layout matches, bad arguments are refused before C touches memory,
// and failures name the interface and the errno. The veth tests that move
// real frames are in test/lab/ring.test.ts (they need root and a namespace).
import { describe, expect, it } from 'vitest';
import { FrameBatch, SLOT_SIZE } from '../../src/dataplane/batch.js';
import { loadNative, NativeNotBuiltError, RING_COUNTER_NAMES, RingCounter, RingPort } from '../../src/io/ring-port.js';

const native = loadNative();
const counters = () => new Float64Array(native.COUNTERS);
const sink = { batch: new FrameBatch(4), pending() {}, full() {}, tooLong() {} };

describe('vipr-native', () => {
  it('exports the flat surface and a counter layout that matches RingCounter', () => {
    for (const f of ['open', 'rxBurst', 'txBurst', 'send', 'stats', 'start', 'stop', 'close', 'info'] as const) {
      expect(typeof native[f]).toBe('function');
    }
    expect(native.COUNTERS).toBe(RingCounter.COUNT);
    expect(RING_COUNTER_NAMES.length).toBe(RingCounter.COUNT);
  });

  it('names a missing interface and its errno', () => {
    let error: (Error & { code?: string }) | undefined;
    try {
      native.open('vrt-nonexistent', {}, counters());
    } catch (e) {
      error = e as Error & { code?: string };
    }
    expect(error?.message).toMatch(/^interface vrt-nonexistent: no such interface: /);
    expect(error?.code).toBe('ENODEV');
  });

  it.each([
    [{ rxRing: 'v4' }, /rxRing must be 'v2' or 'v3'/],
    [{ tx: 'carrier-pigeon' }, /tx must be 'sendmmsg' or 'ring'/],
    [{ frameSize: 1000 }, /frameSize must be a power of two/],
    [{ blockSize: 1024 }, /blockSize must be a power of two/],
    [{ fanout: { id: 70000 } }, /fanout.id must be 0..65535/],
    [{ netns: 'a/b' }, /netns must be a name or an absolute path/],
  ])('refuses bad options %j', (options, message) => {
    expect(() => native.open('lo', options as never, counters())).toThrow(message);
  });

  it('refuses a counters array that is too short, and a handle that is not one', () => {
    expect(() => native.open('lo', {}, new Float64Array(3))).toThrow(/counters must hold/);
    const b = new FrameBatch(2);
    expect(() => native.rxBurst({} as never, b.data, 0, 1, SLOT_SIZE, b.length, b.port, 0)).toThrow(/port handle/);
  });

  it('says how to build it when the addon is missing', () => {
    const error = new NativeNotBuiltError('vipr-native is not built: run `bash scripts/setup.sh`');
    expect(error.code).toBe('ENATIVE');
    expect(error.message).toBe('vipr-native is not built: run `bash scripts/setup.sh`');
  });
});

describe.skipIf(process.getuid?.() !== 0)('vipr-native as root (loopback, no frames moved)', () => {
  it('opens lo, checks burst bounds against the JS arrays, and closes', () => {
    const c = counters();
    const handle = native.open('lo', { frameCount: 64 }, c);
    try {
      const b = new FrameBatch(4);
      // Slots beyond the batch would make C write past the buffer: refused.
      expect(() => native.rxBurst(handle, b.data, 2, 4, SLOT_SIZE, b.length, b.port, 0)).toThrow(RangeError);
      expect(() => native.txBurst(handle, b.data, Uint16Array.of(9), 1, SLOT_SIZE, b.length)).toThrow(RangeError);
      b.length[0] = SLOT_SIZE + 1;
      expect(() => native.txBurst(handle, b.data, Uint16Array.of(0), 1, SLOT_SIZE, b.length)).toThrow(RangeError);
      expect(native.info(handle)).toMatchObject({ version: 2, tx: 'sendmmsg', closed: false });
    } finally {
      native.close(handle);
    }
    expect(native.info(handle).closed).toBe(true);
    native.close(handle); // idempotent
  });

  it('RingPort opens, reports its ring and closes', () => {
    const port = new RingPort('lo', 0, { rxRing: 'v3', frameCount: 64 });
    port.open(sink);
    expect(port.info()).toMatchObject({ version: 3, closed: false });
    expect(() => port.open(sink)).toThrow(/already open/);
    port.close();
    expect(port.info()).toBeUndefined();
  });
});
