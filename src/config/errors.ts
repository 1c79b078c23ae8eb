// The one error type the config loader throws.
//
// Its message is always a single line an operator can paste into an editor's
// "go to" box: `FILE:LINE:COL: FIELD: what is wrong`. Log pipelines, systemd's
// journal and `vipr run` all show the first line of a message only, so a
// multi-line error would lose the part that matters.

export interface ConfigErrorLocation {
  /** The config file path as given to the loader. */
  file: string;
  /** 1-based line; undefined when the file could not be read at all. */
  line?: number;
  /** 1-based column. */
  column?: number;
  /** Dotted path of the offending field, e.g. `routes[2].prefix`; undefined for YAML syntax errors. */
  field?: string;
}

export class ConfigError extends Error {
  readonly code = 'ECONFIG' as const;
  readonly file: string;
  readonly line: number | undefined;
  readonly column: number | undefined;
  readonly field: string | undefined;
  /** What is wrong, without the location prefix. */
  readonly reason: string;

  constructor(location: ConfigErrorLocation, reason: string) {
    super(formatConfigError(location, reason));
    this.name = 'ConfigError';
    this.file = location.file;
    this.line = location.line;
    this.column = location.column;
    this.field = location.field;
    this.reason = reason;
  }
}

function formatConfigError(location: ConfigErrorLocation, reason: string): string {
  let where = location.file;
  if (location.line !== undefined) where += `:${location.line}:${location.column ?? 1}`;
  const field = location.field === undefined ? '' : `${location.field}: `;
  // Line breaks would break the one-line promise (YAML or zod text, or a value
  // quoted from the file, can carry one, U+2028 included); other control bytes
  // are shown escaped, so a terminal prints them as what they are.
  return `${where}: ${field}${reason}`
    .replace(/\s*[\r\n\u2028\u2029]+\s*/g, ' ')
    .replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
