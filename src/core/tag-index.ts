/**
 * The tag index in Redis, one for the page cache and the data cache: a set per tag holding the
 * keys tagged with it. Both operations are single-key Lua scripts, so they are atomic and valid on
 * Redis Cluster (each touches only its tag set's slot).
 */
import type { RedisClient } from './redis.js'

// The set lives as long as its longest-lived member; PEXPIRE ... GT cannot be used because a set
// without a TTL counts as "infinite" and would never get one.
const ADD_TAG = `redis.call('SADD', KEYS[1], ARGV[1])
local t = redis.call('PTTL', KEYS[1])
local want = tonumber(ARGV[2])
if t < want then redis.call('PEXPIRE', KEYS[1], want) end
return 1`

// Read and delete the tag set atomically: a key tagged between a SMEMBERS and a DEL would
// otherwise lose its membership and survive the next purge of the tag.
const POP_TAG = `local m = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
return m`

/** Adds `member` to the set at `tagKey`, extending the set's life to at least `ttlMs`. */
export function addToTag(client: RedisClient, tagKey: string, member: string, ttlMs: number): Promise<unknown> {
  return client.eval(ADD_TAG, 1, tagKey, member, Math.max(1, Math.ceil(ttlMs)))
}

/** Adds `member` under every tag, the commands issued together (one socket write, one slot each). */
export function addToTags(client: RedisClient, tagKeys: readonly string[], member: string, ttlMs: number): Promise<unknown> {
  return Promise.all(tagKeys.map((tk) => addToTag(client, tk, member, ttlMs)))
}

/** The members of the tag set, which is deleted in the same step. */
export async function popTag(client: RedisClient, tagKey: string): Promise<string[]> {
  return (await client.eval(POP_TAG, 1, tagKey)) as string[]
}

/** The members, leaving the set in place (soft purges: the entries stay, marked stale). */
export function tagMembers(client: RedisClient, tagKey: string): Promise<string[]> {
  return client.smembers(tagKey)
}
