// Preloaded into a profiled server (`node --import ./bench/profile-preload.js …`, or NODE_OPTIONS):
// SIGUSR2 starts the V8 CPU profiler, SIGWINCH stops it and writes the profile to
// $STRATA_PROFILE_OUT (a .cpuprofile file, readable by bench/tools/cpuprofile-top.js or Chrome DevTools).
// Unlike --cpu-prof it covers only the window the bench asks for (no start-up, no warm-up) and is
// allowed in NODE_OPTIONS. Sampling interval: $STRATA_PROFILE_US µs (default 100).
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'

const session = new Session()
session.connect()
const post = (method, params = {}) => new Promise((resolve, reject) => session.post(method, params, (err, r) => (err ? reject(err) : resolve(r))))
await post('Profiler.enable')
await post('Profiler.setSamplingInterval', { interval: Number(process.env.STRATA_PROFILE_US ?? 100) })
process.on('SIGUSR2', () => void post('Profiler.start'))
process.on('SIGWINCH', () => {
  void post('Profiler.stop').then(({ profile }) => writeFileSync(process.env.STRATA_PROFILE_OUT, JSON.stringify(profile)))
})
