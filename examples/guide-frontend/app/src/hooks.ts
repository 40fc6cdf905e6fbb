// What the browser test reads of the page (examples/guide-frontend/guide_test.go).
// Nothing here changes what the guide's app does: the map calls these from
// deck.gl's own callbacks, and the test reads window.__guide.

type Guide = {
  // onViewportLoad calls: every tile of the view has loaded.
  viewportLoads: number
  // Features in the tiles of the last loaded view.
  features: number
  // deck.gl's errors (a refused instantiation is one).
  errors: string[]
}

declare global {
  interface Window {
    __guide: Guide
  }
}

export function resetHooks() {
  window.__guide = { viewportLoads: 0, features: 0, errors: [] }
}

export function viewportLoaded(tiles: { content?: unknown }[]) {
  window.__guide.features = tiles.reduce((n, t) => n + featureCount(t.content), 0)
  window.__guide.viewportLoads++
}

export function deckError(error: Error) {
  window.__guide.errors.push(String(error))
}

// featureCount counts the features of a tile: GeoJSON (what TokenBroker's
// emulator serves) or deck.gl's binary form (CARTO's own tiles, MVT).
function featureCount(content: unknown): number {
  if (!content || typeof content !== 'object') return 0
  const c = content as { features?: unknown[]; points?: { featureIds?: { value: ArrayLike<number> } } }
  if (Array.isArray(c.features)) return c.features.length
  if (c.points?.featureIds) return new Set(Array.from(c.points.featureIds.value)).size
  return 0
}

resetHooks()
