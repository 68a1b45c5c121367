// Types for tutorial-snippets.js, so the TypeScript tests can call it.

/** The regions of a source file by name, each as its text (pieces joined by a blank line). */
export function regionsOf (text: string, name: string): Map<string, string>
/** The whole file as the docs show it: without region markers. */
export function withoutMarkers (text: string): string
/** Checks (or, with `write`, rewrites) every snippet block of the Markdown files in `root/docs`. */
export function syncSnippets (options: { root: string, docs?: string, write?: boolean }): Promise<{ problems: string[], rewritten: string[] }>
