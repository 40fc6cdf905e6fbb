import maplibregl from 'maplibre-gl'
import { Deck, type MapViewState } from '@deck.gl/core'
import { BASEMAP, vectorQuerySource, VectorTileLayer } from '@deck.gl/carto'
import { deckError, resetHooks, viewportLoaded } from './hooks'

let deckgl: Deck | null = null
let basemap: maplibregl.Map | null = null

const INITIAL_VIEW_STATE: MapViewState = {
  latitude: 39.8097343,
  longitude: -98.5556199,
  zoom: 4,
  bearing: 0,
}

// The basemap follows deck.gl's view.
function syncBasemap({ viewState }: { viewState: MapViewState }) {
  const { longitude, latitude, ...rest } = viewState
  basemap?.jumpTo({ center: [longitude, latitude], ...rest })
}

export function initMap() {
  deckgl?.finalize()
  basemap?.remove()
  resetHooks()

  // The basemap comes from CARTO's CDN. Offline it fails (maplibre logs the
  // error); the stores are drawn by deck.gl all the same.
  try {
    basemap = new maplibregl.Map({
      container: 'map',
      style: BASEMAP.VOYAGER,
      center: [INITIAL_VIEW_STATE.longitude, INITIAL_VIEW_STATE.latitude],
      zoom: INITIAL_VIEW_STATE.zoom,
    })
  } catch (err) {
    console.warn('no basemap:', err)
    basemap = null
  }

  // An empty deck.gl map until the user logs in.
  deckgl = new Deck({
    canvas: 'deck-canvas',
    initialViewState: INITIAL_VIEW_STATE,
    controller: true,
    layers: [],
    onViewStateChange: syncBasemap,
    onError: (error) => {
      deckError(error)
      console.error(error)
    },
  })
}

export function setLayer(group: string, accessToken: string) {
  const apiBaseUrl = import.meta.env.VITE_CARTO_API_BASE_URL
  const connectionName = 'carto_dw'
  const cartoConfig = { apiBaseUrl, accessToken, connectionName }

  // The group's stores: the query names the group's city as a parameter,
  // and the token only grants that query with the group's own city.
  const retailStores = vectorQuerySource({
    ...cartoConfig,
    sqlQuery: 'SELECT * FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = @groupcity',
    queryParameters: { groupcity: group },
  })

  const retailLayer = new VectorTileLayer({
    id: 'retails',
    data: retailStores,
    pointRadiusMinPixels: 4,
    getFillColor: [200, 0, 80],
    onViewportLoad: viewportLoaded,
  })

  deckgl?.setProps({ layers: [retailLayer] })
}
