// Control commands answered, by command and result, for the metrics endpoint.
// The ControlServer records every answered line; the label set stays small
// because commands are the grammar's names (a line that never parsed counts
// as `invalid`), never the operator's text.

export type CommandResult = 'ok' | 'error';

/** What a line that did not parse into a command is counted as. */
export const INVALID_COMMAND = 'invalid';

export interface CommandCount {
  command: string;
  result: CommandResult;
  count: number;
}

export class CommandCounts {
  private readonly counts = new Map<string, { ok: number; error: number }>();

  record(command: string, result: CommandResult): void {
    let row = this.counts.get(command);
    if (row === undefined) {
      row = { ok: 0, error: 0 };
      this.counts.set(command, row);
    }
    row[result]++;
  }

  /** One entry per command and result seen so far. */
  list(): CommandCount[] {
    const out: CommandCount[] = [];
    for (const [command, row] of this.counts) {
      if (row.ok > 0) out.push({ command, result: 'ok', count: row.ok });
      if (row.error > 0) out.push({ command, result: 'error', count: row.error });
    }
    return out;
  }
}
