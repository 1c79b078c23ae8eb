// "Did you mean" for config keys, enum values and server names, and lists of names short enough for one line.

/** Lower case without `_` and `-`, so `kernel_forwarding` meets `kernelForwarding`. */
function normalize(word: string): string {
  return word.toLowerCase().replace(/[_-]/g, '');
}

/** Edits (insert, delete, substitute, swap two neighbours) turning `a` into `b`. */
function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    rows.push([i]);
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        rows[0].push(j);
        continue;
      }
      let best = Math.min(
        rows[i - 1][j] + 1,
        rows[i][j - 1] + 1,
        rows[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, rows[i - 2][j - 2] + 1);
      }
      rows[i].push(best);
    }
  }
  return rows[a.length][b.length];
}

/**
 * The candidate closest to `word`, if it is close enough to be a plausible
 * typo: one edit for short words, two or a third of the word for longer ones, or one is a prefix of the
 * other (`retransmit` for `retransmitMs`, `warning` for `warn`).
 */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const typed = normalize(word);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const known = normalize(candidate);
    let distance = editDistance(typed, known);
    const shorter = Math.min(typed.length, known.length);
    if (shorter >= 3 && (known.startsWith(typed) || typed.startsWith(known))) distance = Math.min(distance, 1);
    // One edit on short words, else about a third of the word: "io" must not
    // suggest "ip" for everything two letters long.
    const allowed = known.length <= 4 ? 1 : Math.max(2, Math.floor(known.length / 3));
    if (distance <= allowed && distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** `; did you mean "level"?` or an empty string. */
export function didYouMean(word: string, candidates: readonly string[]): string {
  const match = closest(word, candidates);
  return match === undefined ? '' : `; did you mean "${match}"?`;
}

/** The first names of a long list and how many more: a message naming 20,000 servers stays one readable line. */
export function listSome(names: readonly string[], shown = 8): string {
  return names.length <= shown ? names.join(', ') : `${names.slice(0, shown).join(', ')} and ${names.length - shown} more`;
}
