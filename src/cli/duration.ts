/**
 * Durations on the command line: "10m", "90s", "1h30m", "500ms", or a bare number of seconds
 * (as NAIS's and kubectl's --timeout read them).
 */

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
/** Longer than any deadline cutover allows (24 h), so a typo such as "600h" is caught. */
export const MAX_DURATION_MS = 7 * 24 * 3_600_000;

/** Milliseconds of a duration, or throws an Error whose message says what is accepted. */
export function parseDuration(text: string): number {
  const input = text.trim().toLowerCase();
  const accepted = 'expected a duration such as 90s, 10m, 1h30m or 500ms, or a number of seconds';
  if (input === '') throw new Error(`empty duration; ${accepted}`);
  let ms: number;
  if (/^\d+(\.\d+)?$/.test(input)) {
    ms = Number(input) * 1000;
  } else {
    ms = 0;
    PART.lastIndex = 0;
    let matched = 0;
    while (PART.lastIndex < input.length) {
      const start = PART.lastIndex;
      const m = PART.exec(input);
      if (!m || m.index !== start) throw new Error(`invalid duration "${text}"; ${accepted}`);
      ms += Number(m[1]) * UNIT_MS[m[2]!]!;
      matched++;
    }
    if (matched === 0) throw new Error(`invalid duration "${text}"; ${accepted}`);
  }
  if (!Number.isFinite(ms) || ms <= 0) throw new Error(`duration "${text}" must be greater than zero`);
  if (ms > MAX_DURATION_MS) throw new Error(`duration "${text}" is longer than 7 days`);
  return Math.round(ms);
}
