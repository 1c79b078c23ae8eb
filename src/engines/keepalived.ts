// keepalived holds the servers' gateway address (VRRP) on one router of the
// pair at a time and tracks the liveness link (track_interface): vipr never
// talks to it, it only makes sure at start that keepalived is there to follow
// the link, in the same network namespace as vipr's ports.

import { readFile, readlink } from 'node:fs/promises';
import type { KeepalivedConfig } from '../config/types.js';

export class KeepalivedError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
  }
}

/** keepalived's main process, from its pid file. Throws a one-line KeepalivedError when it is not running here. */
export async function findKeepalived(config: KeepalivedConfig): Promise<number> {
  const fix = 'start it (systemctl start keepalived) with a vrrp_instance that tracks the liveness link (packaging/keepalived-router1.conf)';
  let text: string;
  try {
    text = await readFile(config.pidFile, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new KeepalivedError(`keepalived: not running (${code === 'ENOENT' ? `no pid file ${config.pidFile}` : `cannot read ${config.pidFile}: ${code}`}); ${fix}`, 'ENOKEEPALIVED');
  }
  const pid = Number(text.trim());
  const comm = Number.isInteger(pid) && pid > 0 ? await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '') : '';
  if (comm.trim() !== 'keepalived') {
    throw new KeepalivedError(`keepalived: not running (${config.pidFile} names pid ${text.trim() || '(nothing)'}, which is ${comm.trim() ? `"${comm.trim()}"` : 'gone'}); ${fix}`, 'ENOKEEPALIVED');
  }
  // Another namespace's keepalived would track another liveness link. Unprivileged, /proc may not say: then trust it.
  const [theirs, ours] = await Promise.all([readlink(`/proc/${pid}/ns/net`).catch(() => undefined), readlink('/proc/self/ns/net').catch(() => undefined)]);
  if (theirs !== undefined && ours !== undefined && theirs !== ours) {
    throw new KeepalivedError(`keepalived: pid ${pid} (${config.pidFile}) runs in another network namespace (${theirs}, vipr in ${ours}): it cannot see this router's ports; ${fix}`, 'EKEEPALIVEDNS');
  }
  return pid;
}
