// Where the data plane's tables live. On one thread (tests, `dataplane.workers:
// 0`) plain typed arrays; with data-plane worker threads, SharedArrayBuffers:
// the control plane writes them on the main thread, the workers read them, and
// no table is ever copied between threads (only the buffers are sent, once).

/** How a table allocates its arrays. */
export type Memory = 'local' | 'shared';

type TypedArrayConstructor<T> = { new (buffer: ArrayBufferLike): T; readonly BYTES_PER_ELEMENT: number };

/** A zeroed typed array of `length` elements, over a SharedArrayBuffer when `memory` is 'shared'. */
export function allocate<T>(Type: TypedArrayConstructor<T>, length: number, memory: Memory): T {
  const bytes = Math.max(1, length) * Type.BYTES_PER_ELEMENT;
  // Round up to 8 bytes so any view (Float64, words) fits the same buffer.
  const size = (bytes + 7) & ~7;
  return new Type(memory === 'shared' ? new SharedArrayBuffer(size) : new ArrayBuffer(size));
}

/** The buffer under a typed array, to send to a worker (a SharedArrayBuffer is shared, not copied). */
export function bufferOf(array: { buffer: ArrayBufferLike }): ArrayBufferLike {
  return array.buffer;
}
