// What every measurement of one mode shares: its lab and router, the
// generator's frame files, the commands recorded for the results, and how
// trials wait for a quiet box and judge who was the limit.

import type { RouterProcess, FwLab } from './routers.js';
import type { SizeName } from './modes.js';

export type FlatGenerator = 'pace' | 'trafgen';

export interface Ctx {
  lab: FwLab;
  router?: RouterProcess;
  /** the run's temp dir (trafgen configs, profiles) */
  dir: string;
  /** trafgen config files per frame size */
  cfg: Record<SizeName, string>;
  /** the commands that made the figures, for the results file */
  commands: Record<string, string[]>;
  quietMaxMs: number;
  quietThreshold: number;
  /** the flat-out generator, how many processes of it to start with and at most */
  flatGenerator: FlatGenerator;
  generators: number;
  maxGenerators: number;
  /** a trial that lost or was refused less than this share of what was offered was limited by the generator */
  tolerance: number;
}
