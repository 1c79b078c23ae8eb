// Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable
// Software Network Load Balancer", NSDI 2016, section 3.4): the lookup table
// that places a group's new flows on its members. Control plane: it builds the
// table; the data plane only reads it, `table[flowHash % table.length]`, a
// next-hop index, and never imports this file.
//
// Each member gets a permutation of the table's slots from two hashes of its
// name: offset = h1(name) mod M, skip = h2(name) mod (M - 1) + 1, slot j of
// its preference list = (offset + j * skip) mod M, which visits every slot
// because M is prime. Members take turns claiming their next preferred free
// slot until the table is full. So every member ends up with about the same
// share of slots, and a member that leaves frees exactly its own slots, which
// the others claim in their preference order: other slots move only when a
// member's preference list is disturbed by the change, which the paper shows
// is rare when M is much larger than the number of members (M >= 100 members
// keeps it under a few per cent).
//
// Weights: a member of weight w takes a turn in round r while it has had
// fewer than r * w / maxWeight turns (the paper's "relative frequency of the
// backends' turns"; Envoy's weighted Maglev does the same), so it gets about
// w / sum(w) of the slots.
//
// Deterministic: members take turns in name order (UTF-16 code units, no
// locale), whatever order the config lists them in, and the hashes are
// MurmurHash3 seeded from the config: two routers with the same config build
// the same table, so a flow that moves between them keeps its server.

import murmurhash from 'murmurhash';

/** The paper's default: a prime well above 100 x the members of any group vipr expects. */
export const MAGLEV_DEFAULT_SIZE = 65_537;
/** Slots per member below which the share a change moves grows past a few per cent (the paper's figure 12). */
export const MAGLEV_SLOTS_PER_MEMBER = 100;
/** 2^24 slots (32 MiB of Uint16): 167,000 members at 100 slots each, far beyond a next-hop table. */
export const MAGLEV_MAX_SIZE = 1 << 24;
/** LVS's weight range (IP_VS_WEIGHT_MAX is 65535). */
export const MAGLEV_MAX_WEIGHT = 65_535;

export class MaglevError extends Error {
  readonly code: 'EBADSIZE' | 'EBADMEMBER';
  constructor(message: string, code: MaglevError['code']) {
    super(message);
    this.name = 'MaglevError';
    this.code = code;
  }
}

export interface MaglevMember {
  /** The member's name (a server name): its slots follow from it. */
  name: string;
  /** The next-hop index the data plane forwards its flows to (16 bits). */
  nextHop: number;
  /** Integer weight, default 1; 0 takes no new flows (LVS's quiescent weight 0). */
  weight?: number;
  /** Down by its checks: takes no new flows. Default true. */
  healthy?: boolean;
  /** Being drained: takes no new flows. Default false. */
  drained?: boolean;
}

export interface MaglevOptions {
  /** The config's flow hash seed (hashSeed), the same as the data plane's flowHash seed. */
  seed: number;
  /** Table size: a prime, at least 100 x the members. Default 65,537. */
  size?: number;
  /** Next hop written to every slot when no member can take flows. Default 0 (no route). */
  empty?: number;
  /** Write into this array (of length `size`), e.g. a view of a SharedArrayBuffer, instead of a new one. */
  into?: Uint16Array;
}

export interface MaglevTable {
  /** Next-hop index per slot; the data plane reads table[hash % table.length]. */
  table: Uint16Array;
  /** Slots per member name (members that take no new flows have 0). */
  slots: Map<string, number>;
}

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) {
    if (n % d === 0) return false;
  }
  return true;
}

/** The smallest prime >= n. */
export function nextPrime(n: number): number {
  let candidate = Math.max(2, Math.ceil(n));
  while (!isPrime(candidate)) candidate++;
  return candidate;
}

/**
 * What is wrong with `size` for a group of `members` members (all of them,
 * healthy or not), as a message for the field that set it; undefined when
 * it is fine.
 */
export function maglevSizeProblem(size: number, members: number): string | undefined {
  const minimum = Math.max(2, members * MAGLEV_SLOTS_PER_MEMBER);
  if (!Number.isInteger(size) || size < minimum || size > MAGLEV_MAX_SIZE || !isPrime(size)) {
    const smallest = nextPrime(Math.max(minimum, size > MAGLEV_MAX_SIZE ? 0 : Number.isFinite(size) ? size : 0));
    const suggestion = smallest <= MAGLEV_MAX_SIZE ? `; did you mean ${smallest}?` : '';
    return `expected a prime from ${minimum} (100 slots per member, ${members} members) to ${MAGLEV_MAX_SIZE}, got ${size}${suggestion}`;
  }
  return undefined;
}

/** A 32-bit hash seed from the config's text (e.g. `flows.hashSeed`): the same text, the same seed everywhere. */
export function hashSeed(text: string): number {
  return murmurhash.v3(text, 0);
}

/** The second hash's seed: MurmurHash3 with another seed is an independent hash for this purpose. */
const skipSeed = (seed: number): number => (seed ^ 0x9e3779b9) >>> 0;

function checkMember(member: MaglevMember, seen: Set<string>): void {
  const weight = member.weight ?? 1;
  if (typeof member.name !== 'string' || member.name === '') {
    throw new MaglevError('maglev: every member needs a name', 'EBADMEMBER');
  }
  if (seen.has(member.name)) throw new MaglevError(`maglev: member ${member.name} is listed twice`, 'EBADMEMBER');
  seen.add(member.name);
  if (!Number.isInteger(member.nextHop) || member.nextHop < 0 || member.nextHop > 0xffff) {
    throw new MaglevError(`maglev: member ${member.name}: next hop ${member.nextHop} is not a 16-bit index`, 'EBADMEMBER');
  }
  if (!Number.isInteger(weight) || weight < 0 || weight > MAGLEV_MAX_WEIGHT) {
    throw new MaglevError(`maglev: member ${member.name}: expected a whole weight from 0 to ${MAGLEV_MAX_WEIGHT}, got ${weight}`, 'EBADMEMBER');
  }
}

/**
 * The lookup table for a group: every member listed (so the size is checked
 * against the whole group), the healthy, undrained ones with weight > 0
 * taking slots.
 */
export function buildMaglevTable(members: readonly MaglevMember[], options: MaglevOptions): MaglevTable {
  const size = options.size ?? MAGLEV_DEFAULT_SIZE;
  const problem = maglevSizeProblem(size, members.length);
  if (problem !== undefined) throw new MaglevError(`maglev: table size: ${problem}`, 'EBADSIZE');
  const seen = new Set<string>();
  for (const member of members) checkMember(member, seen);
  const table = options.into ?? new Uint16Array(size);
  if (table.length !== size) throw new MaglevError(`maglev: the target holds ${table.length} slots, not ${size}`, 'EBADSIZE');

  const slots = new Map<string, number>(members.map((m) => [m.name, 0]));
  const eligible = members
    .filter((m) => m.healthy !== false && m.drained !== true && (m.weight ?? 1) > 0)
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (eligible.length === 0) {
    table.fill(options.empty ?? 0);
    return { table, slots };
  }

  const count = eligible.length;
  const position = new Float64Array(count);
  const skip = new Float64Array(count);
  const weight = new Float64Array(count);
  const turns = new Float64Array(count);
  let maxWeight = 0;
  eligible.forEach((member, i) => {
    position[i] = murmurhash.v3(member.name, options.seed) % size;
    skip[i] = (murmurhash.v3(member.name, skipSeed(options.seed)) % (size - 1)) + 1;
    weight[i] = member.weight ?? 1;
    maxWeight = Math.max(maxWeight, weight[i]);
  });
  const owner = new Int32Array(size).fill(-1);
  let filled = 0;
  for (let round = 1; filled < size; round++) {
    for (let i = 0; i < count && filled < size; i++) {
      if (turns[i] * maxWeight >= round * weight[i]) continue;
      turns[i]++;
      let slot = position[i];
      while (owner[slot] >= 0) {
        slot += skip[i];
        if (slot >= size) slot -= size;
      }
      owner[slot] = i;
      filled++;
      slot += skip[i];
      position[i] = slot >= size ? slot - size : slot;
    }
  }
  const claimed = new Float64Array(count);
  for (let slot = 0; slot < size; slot++) {
    const i = owner[slot];
    table[slot] = eligible[i].nextHop;
    claimed[i]++;
  }
  eligible.forEach((member, i) => slots.set(member.name, claimed[i]));
  return { table, slots };
}
