/**
 * The seeds of every test that generates random data, in one place.
 *
 * - TEST_SEED=<n>: that seed alone (to replay a failure: each run prints its seeds);
 * - CI set: the fixed list below, plus one fresh seed;
 * - otherwise: one fresh seed.
 *
 * A seed that found a bug belongs in FIXED_SEEDS, so CI runs it from then on.
 */
import fc from 'fast-check'
import type { Test } from 'tap'

export const FIXED_SEEDS: readonly number[] = [20_035, 20_240_601, 20_240_602]

/** A seed nobody chose: printed by `seedsFor`, so a failure can be replayed. */
function freshSeed (): number {
  return Math.floor(Math.random() * 2 ** 31)
}

/** The seeds to run, each printed as the TEST_SEED that replays it. */
export function seedsFor (t: Test): number[] {
  const given = process.env.TEST_SEED
  const seeds = given !== undefined && given !== ''
    ? [Number(given)]
    : process.env.CI ? [...FIXED_SEEDS, freshSeed()] : [freshSeed()]
  for (const seed of seeds) {
    if (!Number.isSafeInteger(seed)) throw new Error(`TEST_SEED must be an integer, got ${String(given)}`)
    t.comment(`seed ${seed}: replay with TEST_SEED=${seed}`)
  }
  return seeds
}

/**
 * Uniform draws in [0, 1) from fast-check's generator for `seed`, for random
 * writes that depend on what the database holds as they go (so no property to
 * shrink): the suite's one PRNG is fast-check's. Unbiased, since fast-check
 * otherwise favours edge values; drawn in batches, so any number can be taken.
 */
export function draws (seed: number): () => number {
  const batch = 1024
  let values: number[] = []
  let taken = 0
  let batches = 0
  return () => {
    if (taken === values.length) {
      // each batch its own seed derived from the one given: the stream stays a function of `seed`
      values = fc.sample(fc.integer({ min: 0, max: 2 ** 32 - 1 }), { seed: (seed + batches++ * 0x9e3779b1) | 0, numRuns: batch, unbiased: true })
      taken = 0
    }
    return (values[taken++] as number) / 2 ** 32
  }
}
