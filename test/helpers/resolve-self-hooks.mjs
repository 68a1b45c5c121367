// Module resolution hooks for resolve-self.mjs.
let urls = {}

export function initialize (data) {
  urls = data
}

export async function resolve (specifier, context, nextResolve) {
  if (specifier === 'fastify-rest-live' && urls.lib) return { url: urls.lib, shortCircuit: true }
  if (specifier === 'fastify-rest-live/client' && urls.client) return { url: urls.client, shortCircuit: true }
  return await nextResolve(specifier, context)
}
