export * from './schema.js'
export { resolveConfig, resolveUpstream, loadConfigFile, ConfigError, DEFAULT_PORT, DEFAULT_ADMIN_PORT } from './load.js'
export { poolConfigs, DEFAULT_POOL } from './pools.js'
export { shadowedRoutes } from './route-rules.js'
