/**
 * The tutorial runs as written: every section's file in examples/tutorial,
 * started as its own process against PostgreSQL, does what docs/tutorial.md says.
 */
import t from 'tap'
import { DATABASE_URL, postgresAvailable } from './helpers/db.js'
import { tutorialSections } from './helpers/tutorial-sections.js'

// each section is a process of its own, three at a time: more than the default per-file timeout on a busy machine
t.setTimeout(300_000)

const up = await postgresAvailable()
t.test('the tutorial on PostgreSQL', { jobs: 3, skip: up ? false : `PostgreSQL does not answer at ${DATABASE_URL}` }, async (t) => {
  await tutorialSections(t, 'postgres')
})
