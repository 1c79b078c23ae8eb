// The queue between the data-plane workers and the main thread: records come
// out in order and whole, a full queue refuses (and counts) instead of
// overwriting, and the doorbell rings once per quiet-to-busy change.
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { FrameQueue, RECORD_FIELDS } from '../../src/dataplane/queue.js';

function push(queue: FrameQueue, value: number): { accepted: boolean; ring: boolean } {
  const k = queue.reserve();
  if (k < 0) return { accepted: false, ring: false };
  queue.fields[k * RECORD_FIELDS] = value;
  queue.data[k * queue.slotSize] = value & 0xff;
  return { accepted: true, ring: queue.commit() };
}

function takeAll(queue: FrameQueue): number[] {
  const out: number[] = [];
  queue.drain((k) => {
    expect(queue.data[k * queue.slotSize]).toBe(queue.fields[k * RECORD_FIELDS] & 0xff);
    out.push(queue.fields[k * RECORD_FIELDS]);
  });
  return out;
}

describe('FrameQueue', () => {
  it('in order, full when capacity records wait, and again after they are taken, across the wrap of its indices', () => {
    const queue = new FrameQueue(8, 64);
    let next = 0;
    for (let round = 0; round < 50; round++) {
      const pushed: number[] = [];
      for (let i = 0; i < 8; i++) {
        expect(push(queue, next).accepted).toBe(true);
        pushed.push(next++);
      }
      expect(push(queue, -1).accepted).toBe(false);
      expect(takeAll(queue)).toEqual(pushed);
    }
    expect(queue.refused).toBe(50);
    expect(queue.length).toBe(0);
  });

  it('rings the doorbell when the first record of a burst arrives, not for the others, and again after a drain', () => {
    const queue = new FrameQueue(16, 64);
    expect(push(queue, 1).ring).toBe(true);
    expect(push(queue, 2).ring).toBe(false);
    expect(push(queue, 3).ring).toBe(false);
    takeAll(queue);
    expect(push(queue, 4).ring).toBe(true);
  });

  it('carries records from another thread whole (a worker pushes 10,000, this thread takes them as they come)', async () => {
    const queue = new FrameQueue(64, 64);
    const source = `
      const { workerData, parentPort } = require('node:worker_threads');
      const control = new Uint32Array(workerData.control);
      const fields = new Int32Array(workerData.fields);
      const data = new Uint8Array(workerData.data);
      const capacity = workerData.capacity;
      for (let value = 0; value < 10000; ) {
        const tail = control[1];
        if (((tail - Atomics.load(control, 0)) >>> 0) >= capacity) continue; // full: wait for room
        const k = tail % capacity;
        fields[k * ${RECORD_FIELDS}] = value;
        data[k * workerData.slotSize] = value & 0xff;
        Atomics.store(control, 1, (tail + 1) >>> 0);
        value++;
      }
      parentPort.postMessage('done');
    `;
    const worker = new Worker(source, { eval: true, workerData: queue.buffers() });
    const seen: number[] = [];
    let done = false;
    worker.once('message', () => (done = true));
    while (!done || queue.length > 0) {
      seen.push(...takeAll(queue));
      await new Promise((resolve) => setImmediate(resolve));
    }
    await worker.terminate();
    expect(seen).toEqual(Array.from({ length: 10000 }, (_, i) => i));
  });
});
