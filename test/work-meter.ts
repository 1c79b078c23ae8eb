// Counts the work a piece of code does without a clock: every element that the
// built-in collection methods touch (Array search and iteration, Map and Set
// reads and writes, iterators). Run the same code at n and at 8n: linear code
// does about 8 times the work, quadratic code about 64 times, on any machine
// and under any load. Loops written with `for (let i...)` over plain indices
// are not seen; the control plane's collections all go through these methods.

type Method = (this: unknown, ...args: unknown[]) => unknown;

const ARRAY_SCANS = ['forEach', 'map', 'filter', 'find', 'findIndex', 'some', 'every', 'indexOf', 'includes', 'join', 'slice', 'concat', 'reduce', 'flatMap'] as const;
const KEYED = [
  [Map.prototype, ['get', 'set', 'has', 'delete']],
  [Set.prototype, ['add', 'has', 'delete']],
] as const;
const ITERABLES = [
  [Array.prototype, ['values', 'keys', 'entries']],
  [Map.prototype, ['values', 'keys', 'entries']],
  [Set.prototype, ['values', 'keys', 'entries']],
] as const;

/** Runs `work` and returns how many collection elements it touched. */
export async function countWork(work: () => unknown): Promise<number> {
  let count = 0;
  const restore: (() => void)[] = [];
  const patch = (target: object, name: PropertyKey, wrap: (original: Method) => Method) => {
    const original = (target as Record<PropertyKey, Method>)[name];
    Object.defineProperty(target, name, { value: wrap(original), writable: true, configurable: true, enumerable: false });
    restore.push(() => Object.defineProperty(target, name, { value: original, writable: true, configurable: true, enumerable: false }));
  };
  const countingIterator = (original: Method): Method =>
    function (this: unknown, ...args: unknown[]) {
      const iterator = original.apply(this, args) as Iterator<unknown>;
      const next = iterator.next.bind(iterator);
      return Object.assign(Object.create(Object.getPrototypeOf(iterator) as object) as object, {
        next: () => {
          count++;
          return next();
        },
        [Symbol.iterator]() {
          return this;
        },
      });
    };
  try {
    for (const name of ARRAY_SCANS) {
      patch(Array.prototype, name, (original) => function (this: unknown, ...args: unknown[]) {
        count += (this as unknown[]).length;
        return original.apply(this, args);
      });
    }
    for (const [prototype, names] of KEYED) {
      for (const name of names) {
        patch(prototype, name, (original) => function (this: unknown, ...args: unknown[]) {
          count++;
          return original.apply(this, args);
        });
      }
    }
    for (const [prototype, names] of ITERABLES) {
      for (const name of names) patch(prototype, name, countingIterator);
      patch(prototype, Symbol.iterator, countingIterator);
    }
    await work();
  } finally {
    for (const undo of restore.reverse()) undo();
  }
  return count;
}
