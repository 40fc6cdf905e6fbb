/// <reference types="vite/client" />

interface ImportMetaEnv {
  readonly VITE_CARTO_API_BASE_URL: string
  readonly VITE_COMPANY_API_BASE_URL: string
}
