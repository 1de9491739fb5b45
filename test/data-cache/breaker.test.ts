import { describe, expect, it } from 'vitest'
import { ManualClock } from '../../src/core/clock.js'
import { CircuitBreaker, type BreakerState } from '../../src/core/breaker.js'

function make(threshold = 3, duration = 1000) {
  const clock = new ManualClock()
  const changes: BreakerState[] = []
  const b = new CircuitBreaker({ threshold, duration, clock, onChange: (s) => changes.push(s) })
  return { b, clock, changes }
}

describe('CircuitBreaker', () => {
  it('opens after `threshold` consecutive failures, not before', () => {
    const { b, changes } = make(3)
    b.failure()
    b.failure()
    expect(b.allow()).toBe(true)
    b.success() // resets the streak
    b.failure()
    b.failure()
    expect(b.state).toBe('closed')
    b.failure()
    expect(b.state).toBe('open')
    expect(b.allow()).toBe(false)
    expect(changes).toEqual(['open'])
  })

  it('after `duration` lets exactly one probe through; success closes', () => {
    const { b, clock, changes } = make(1, 1000)
    b.failure()
    clock.advance(999)
    expect(b.allow()).toBe(false)
    clock.advance(1)
    expect(b.allow()).toBe(true)
    expect(b.state).toBe('half-open')
    expect(b.allow()).toBe(false) // one probe at a time
    b.success()
    expect(b.state).toBe('closed')
    expect(b.allow()).toBe(true)
    expect(changes).toEqual(['open', 'half-open', 'closed'])
  })

  it('a failed probe re-opens for another full duration', () => {
    const { b, clock } = make(1, 1000)
    b.failure()
    clock.advance(1000)
    expect(b.allow()).toBe(true)
    b.failure()
    expect(b.state).toBe('open')
    clock.advance(999)
    expect(b.allow()).toBe(false)
    clock.advance(1)
    expect(b.allow()).toBe(true)
  })

  it('reset closes at once and reports the change once', () => {
    const { b, changes } = make(1)
    b.failure()
    b.reset()
    b.reset()
    expect(b.state).toBe('closed')
    expect(changes).toEqual(['open', 'closed'])
  })
})
