import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseDuration } from '../../src/cli/duration.js';
import { parseTimeoutOption } from '../../src/cli/settings.js';
import { InvalidArgumentError } from 'commander';

describe('cli: duration parser (--timeout)', () => {
  it('reads units, combinations and bare seconds', () => {
    assert.equal(parseDuration('10m'), 600_000);
    assert.equal(parseDuration('90s'), 90_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('1m30s'), 90_000);
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('2.5s'), 2500);
    assert.equal(parseDuration('45'), 45_000, 'a bare number is seconds');
    assert.equal(parseDuration(' 3S '), 3000, 'case and surrounding space do not matter');
  });

  it('refuses malformed, zero and absurd durations with a message saying what is accepted', () => {
    for (const bad of ['', 'm', '10x', '10 m', '-5s', '1h-', 'ten minutes', '5s5', 's5']) {
      assert.throws(() => parseDuration(bad), /duration/, `"${bad}" must be refused`);
    }
    assert.throws(() => parseDuration('0s'), /greater than zero/);
    assert.throws(() => parseDuration('600h'), /longer than 7 days/);
  });

  it('as a commander argument parser, fails with InvalidArgumentError (a usage error)', () => {
    assert.equal(parseTimeoutOption('3s'), 3000);
    assert.throws(() => parseTimeoutOption('soon'), (err: unknown) => err instanceof InvalidArgumentError && /expected a duration/.test((err as Error).message));
  });
});
