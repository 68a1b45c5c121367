/**
 * The tutorial runs as written: every section's file in examples/tutorial,
 * started as its own process against SQLite, does what docs/tutorial.md says.
 */
import t from 'tap'
import { tutorialSections } from './helpers/tutorial-sections.js'

// each section is a process of its own, three at a time: more than the default per-file timeout on a busy machine
t.setTimeout(300_000)

t.test('the tutorial on SQLite', { jobs: 3 }, async (t) => {
  await tutorialSections(t, 'sqlite')
})
