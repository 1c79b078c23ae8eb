// Runtime route changes on disk, so they survive a restart (also kill -9).
// Written atomically before the control socket says ok: temp file in the
// same directory, fsync, rename over the old file, fsync the directory. A
// crash leaves either the old file or the new one, never half of one.

import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { RuntimeChanges, RouteSpec } from '../rib/rib.js';
import { prefixKey } from '../rib/rib.js';
import { formatAddress, formatPrefix, parseAddress, parsePrefix } from '../util/ipv4.js';

const FORMAT_VERSION = 1;

interface StoredRoute {
  prefix: string;
  deleted?: true;
  type?: RouteSpec['type'];
  via?: { address: string; server?: string }[];
}

interface StoredState {
  version: number;
  savedAt: string;
  routes: StoredRoute[];
}

export class StateError extends Error {
  readonly code = 'ESTATE';
}

export class StateStore {
  constructor(readonly file: string) {}

  /** Reads saved runtime changes; undefined when there is no state file yet. Throws StateError on a damaged file. */
  async load(): Promise<RuntimeChanges | undefined> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new StateError(`cannot read state file ${this.file}: ${(error as Error).message}`);
    }
    let stored: StoredState;
    try {
      stored = JSON.parse(text) as StoredState;
    } catch (error) {
      throw new StateError(`state file ${this.file} is not valid JSON: ${(error as Error).message}`);
    }
    if (stored?.version !== FORMAT_VERSION || !Array.isArray(stored.routes)) {
      throw new StateError(`state file ${this.file} has an unknown format (version ${String(stored?.version)})`);
    }
    const changes: RuntimeChanges = new Map();
    stored.routes.forEach((route, i) => {
      try {
        const prefix = parsePrefix(route.prefix);
        if (route.deleted) {
          changes.set(prefixKey(prefix), null);
          return;
        }
        const type = route.type ?? 'unicast';
        if (type !== 'unicast' && type !== 'unreachable' && type !== 'blackhole') throw new Error(`unknown type ${String(type)}`);
        const via = (route.via ?? []).map((v) => ({ address: parseAddress(v.address), server: v.server }));
        changes.set(prefixKey(prefix), { prefix, type, via });
      } catch (error) {
        throw new StateError(`state file ${this.file}: routes[${i}]: ${(error as Error).message}`);
      }
    });
    return changes;
  }

  async save(changes: RuntimeChanges): Promise<void> {
    const routes: StoredRoute[] = [];
    for (const [key, spec] of changes) {
      if (spec === null) {
        const [address, length] = key.split('/').map(Number);
        routes.push({ prefix: formatPrefix({ address, length }), deleted: true });
      } else {
        routes.push({
          prefix: formatPrefix(spec.prefix),
          type: spec.type,
          via: spec.via.map((v) => ({ address: formatAddress(v.address), ...(v.server ? { server: v.server } : {}) })),
        });
      }
    }
    const state: StoredState = { version: FORMAT_VERSION, savedAt: new Date().toISOString(), routes };
    const directory = dirname(this.file);
    await mkdir(directory, { recursive: true, mode: 0o755 });
    const temporary = `${this.file}.tmp-${process.pid}`;
    const handle = await open(temporary, 'w', 0o640);
    try {
      await handle.writeFile(JSON.stringify(state, null, 2) + '\n');
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await rename(temporary, this.file);
    } catch (error) {
      await unlink(temporary).catch(() => undefined);
      throw error;
    }
    const dir = await open(directory, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}
