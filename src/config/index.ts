export * from './schema.js'
export { resolveConfig, resolveUpstream, loadConfigFile, ConfigError, DEFAULT_PORT, DEFAULT_ADMIN_PORT } from './load.js'
