import { defineConfig } from 'vite'

// deck.gl and maplibre make one large bundle; the guide ships it as is.
export default defineConfig({
  build: { chunkSizeWarningLimit: 2500 },
})
