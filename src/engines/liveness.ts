// The liveness link: a TUN interface (native-bindings/src/vipr_liveness.c)
// that exists only while this process holds it, with its carrier on only
// while vipr forwards. keepalived tracks it (track_interface) and BIRD's
// announcements hang on it (static routes `via "IFACE"` with `check link`),
// so a vipr that dies by any means takes the VRRP address and the BGP routes
// with it, in milliseconds, and a vipr that cannot forward (a port down,
// shutting down) gives them away on purpose.

import { createRequire } from 'node:module';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

interface LivenessNative {
  open(name: string): number;
  carrier(fd: number, on: boolean): void;
  close(fd: number): void;
}

export class LivenessError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
  }
}

const require = createRequire(import.meta.url);
let native: LivenessNative | undefined;

function loadNative(): LivenessNative {
  if (native) return native;
  const candidates = [
    fileURLToPath(new URL('../../native-bindings/build/Release/vipr_liveness.node', import.meta.url)), // from src/engines
    fileURLToPath(new URL('../../../native-bindings/build/Release/vipr_liveness.node', import.meta.url)), // from dist/src/engines
  ];
  for (const candidate of candidates) {
    try {
      native = require(candidate) as LivenessNative;
      return native;
    } catch {
      /* the next one */
    }
  }
  throw new LivenessError('the liveness link addon (vipr_liveness.node) is not built: run `bash scripts/setup.sh`', 'ENATIVE');
}

export class LivenessLink {
  private fd: number | undefined;
  private on = false;

  private constructor(readonly name: string, fd: number) {
    this.fd = fd;
  }

  /** Creates the interface, carrier off. Throws a one-line LivenessError (another vipr holds it, no /dev/net/tun, ...). */
  static async open(name: string): Promise<LivenessLink> {
    const addon = loadNative();
    let fd: number;
    try {
      fd = addon.open(name);
    } catch (error) {
      const e = error as Error & { code?: string };
      const hint = e.code === 'EBUSY' ? ' (another process holds it: is a second vipr running with the same liveness.interface?)'
        : e.code === 'EPERM' || e.code === 'EACCES' ? ' (vipr needs CAP_NET_ADMIN and read-write access to /dev/net/tun)' : '';
      throw new LivenessError(`${e.message}${hint}`, e.code ?? 'EIO');
    }
    // No IPv6 on a link that carries nothing (best effort: /proc/sys may be read-only under systemd).
    await writeFile(`/proc/sys/net/ipv6/conf/${name}/disable_ipv6`, '1').catch(() => undefined);
    return new LivenessLink(name, fd);
  }

  /** Carrier on: keepalived may hold the address, BIRD announces. Off: both give them away. */
  set(on: boolean): void {
    if (this.fd === undefined || on === this.on) return;
    loadNative().carrier(this.fd, on);
    this.on = on;
  }

  get carrier(): boolean {
    return this.on;
  }

  /** The interface is deleted: the same as vipr dying, on purpose. */
  close(): void {
    if (this.fd === undefined) return;
    loadNative().close(this.fd);
    this.fd = undefined;
    this.on = false;
  }
}
