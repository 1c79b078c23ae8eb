// Who may hold a connection to the control socket: the one place for the
// client-slot policy.
//
// Two budgets, so that one kind of client can never lock out the other:
//   - command slots (MAX_COMMAND_CLIENTS): every new connection takes one;
//   - follower slots (MAX_FOLLOWERS): a connection that sends `events` moves
//     there and gives its command slot back. Followers stay for days, so
//     without their own budget they would fill the socket for good.
// When every command slot is taken, a newcomer takes the slot of the
// connection that has been idle longest (nothing asked, nothing owed to it),
// if that one has been idle at least `evictIdleAfterMs`: a flood of silent
// connections cannot keep an operator out, while a script that connected a
// moment ago and is about to send is never cut off. Only when every
// connection is busy or fresh is the newcomer refused.

/** Most connections at once outside `events`: a hundred scripts plus room for the operator. */
export const MAX_COMMAND_CLIENTS = 256;
/** Most `events` followers at once: operators' terminals and monitoring scripts, each a socket and a line per event. */
export const MAX_FOLLOWERS = 64;
/** A command connection idle this long may be closed to make room for a newcomer when every slot is taken. */
export const EVICT_IDLE_AFTER_MS = 1000;

/** What the policy needs to know of a connection. */
export interface SlotHolder {
  /** When it last did anything (performance.now() ms), or undefined while it is busy: a request running, a reply still going out. */
  idleSince(): number | undefined;
}

export interface SlotLimits {
  commands: number;
  followers: number;
  evictIdleAfterMs: number;
}

export type Admission<T> = { admitted: false } | { admitted: true; evicted?: T };

export class ClientSlots<T extends SlotHolder> {
  private readonly commands = new Set<T>();
  private readonly followers = new Set<T>();

  constructor(readonly limits: SlotLimits = { commands: MAX_COMMAND_CLIENTS, followers: MAX_FOLLOWERS, evictIdleAfterMs: EVICT_IDLE_AFTER_MS }) {}

  /** A new connection: admitted, possibly in the place of an idle one (which the caller closes), or refused. */
  admit(client: T, now: number): Admission<T> {
    if (this.commands.size < this.limits.commands) {
      this.commands.add(client);
      return { admitted: true };
    }
    const evicted = this.longestIdle(now);
    if (evicted === undefined) return { admitted: false };
    this.commands.delete(evicted);
    this.commands.add(client);
    return { admitted: true, evicted };
  }

  /** A command connection becomes a follower; false (and it stays a command connection) when every follower slot is taken. */
  follow(client: T): boolean {
    if (this.followers.has(client)) return true;
    if (this.followers.size >= this.limits.followers) return false;
    this.commands.delete(client);
    this.followers.add(client);
    return true;
  }

  release(client: T): void {
    this.commands.delete(client);
    this.followers.delete(client);
  }

  /** Every connection held, commands and followers. */
  all(): T[] {
    return [...this.commands, ...this.followers];
  }

  get size(): { commands: number; followers: number } {
    return { commands: this.commands.size, followers: this.followers.size };
  }

  private longestIdle(now: number): T | undefined {
    let oldest: T | undefined;
    let oldestSince = now - this.limits.evictIdleAfterMs;
    for (const client of this.commands) {
      const since = client.idleSince();
      if (since !== undefined && since <= oldestSince) {
        oldest = client;
        oldestSince = since;
      }
    }
    return oldest;
  }
}
