export * from './schema.js'
export { resolveConfig, loadConfigFile, ConfigError, DEFAULT_PORT, DEFAULT_ADMIN_PORT } from './load.js'
