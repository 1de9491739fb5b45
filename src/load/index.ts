export { runLoad, formatReport, parsePaths, SATURATION, type LoadOptions, type LoadReport } from './run.js'
export { cacheOutcome, esiDurationMs, readFacts, LoadTally, CACHE_OUTCOMES, type CacheOutcome, type ResponseFacts } from './tally.js'
