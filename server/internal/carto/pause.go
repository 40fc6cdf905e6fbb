package carto

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// SharedPauses keeps the pauses CARTO asked for (a 429's Retry-After), one
// per endpoint, where every replica sees them, so that no replica calls an
// endpoint that CARTO asked to be left alone.
type SharedPauses interface {
	// Pause returns when the pause on endpoint ends, if one is recorded. The
	// record outlives the pause until a call clears it: the first call after
	// the pause is a probe.
	Pause(ctx context.Context, endpoint string) (until time.Time, ok bool, err error)
	// SetPause records a pause on endpoint until until; the record is kept
	// until keep.
	SetPause(ctx context.Context, endpoint string, until, keep time.Time) error
	// ClearPause forgets the pause on endpoint unless it ends after until
	// (another replica has been told to pause again since).
	ClearPause(ctx context.Context, endpoint string, until time.Time) error
	// TryProbe takes the right to make the one call that finds out whether
	// CARTO takes calls again; acquired is false while another holds it.
	TryProbe(ctx context.Context, endpoint string, ttl time.Duration) (release func(), acquired bool, err error)
}

const (
	// defaultPause is the pause after a 429 that gave no Retry-After.
	defaultPause = time.Second
	// maxPause bounds a pause, so that a wild Retry-After cannot stop calls
	// for days.
	maxPause = 5 * time.Minute
	// probeWait is the wait given to callers refused while the probe after
	// a pause is in flight.
	probeWait = time.Second
	// pauseMemory is how long a pause's record outlives it: the first call
	// within it is a probe, which the other replicas do not join. After it,
	// with nobody calling, there is no burst left to hold back.
	pauseMemory = time.Minute
)

// pauses holds CARTO's endpoints back while CARTO is rate limiting them: a
// 429 pauses its endpoint (for every replica, with Shared) until its
// Retry-After has passed; then one probe goes first, and the endpoint is
// free again once CARTO answers it with anything but a 429.
type pauses struct {
	now      func() time.Time
	shared   SharedPauses // nil: this process only
	probeTTL time.Duration
	log      *slog.Logger

	mu    sync.Mutex
	state map[string]*pauseState
}

type pauseState struct {
	until   time.Time // no call before
	armed   bool      // paused, and no call answered since: the next call probes
	probing bool      // the probe is in flight
}

// admission is the right to make one call, given by admit.
type admission struct {
	endpoint string
	probe    bool      // the probe after a pause
	until    time.Time // the end of the pause it probes
	release  func()    // frees the shared probe right; nil if none
}

func newPauses(cfg Config) *pauses {
	return &pauses{now: cfg.Now, shared: cfg.Pauses, probeTTL: max(cfg.CallTimeout, cfg.QueryTimeout) + time.Second, log: cfg.Logger, state: map[string]*pauseState{}}
}

func (p *pauses) get(endpoint string) *pauseState {
	st, ok := p.state[endpoint]
	if !ok {
		st = &pauseState{}
		p.state[endpoint] = st
	}
	return st
}

// admit lets a call to endpoint go ahead, or refuses it with how long to
// wait. A shared store that cannot be read does not stop calls: the pause is
// a courtesy to CARTO, and CARTO still answers 429 itself.
func (p *pauses) admit(ctx context.Context, endpoint string) (_ admission, wait time.Duration, refused bool) {
	now := p.now()
	p.mu.Lock()
	st := p.get(endpoint)
	switch {
	case now.Before(st.until):
		wait := st.until.Sub(now)
		p.mu.Unlock()
		return admission{}, wait, true
	case st.probing:
		p.mu.Unlock()
		return admission{}, probeWait, true
	case p.shared == nil:
		adm := admission{endpoint: endpoint, probe: st.armed, until: st.until}
		st.probing = st.armed
		p.mu.Unlock()
		return adm, 0, false
	}
	p.mu.Unlock()

	free := admission{endpoint: endpoint}
	until, ok, err := p.shared.Pause(ctx, endpoint)
	if err != nil {
		p.log.Warn("shared CARTO pause unreadable; calling CARTO", "endpoint", endpoint, "error", err)
		return free, 0, false
	}
	if !ok {
		return free, 0, false
	}
	if now.Before(until) {
		p.mu.Lock()
		st.until = until // no need to ask the store again before then
		p.mu.Unlock()
		return admission{}, until.Sub(now), true
	}
	release, acquired, err := p.shared.TryProbe(ctx, endpoint, p.probeTTL)
	switch {
	case err != nil:
		p.log.Warn("shared CARTO probe lock unavailable; calling CARTO", "endpoint", endpoint, "error", err)
		return free, 0, false
	case !acquired:
		return admission{}, probeWait, true
	}
	// Read the pause again under the probe right: a probe that ended between
	// the read above and the lock has set a new pause, or cleared the old
	// one, before it let the right go; a second probe would ignore its news.
	until, ok, err = p.shared.Pause(ctx, endpoint)
	switch {
	case err != nil:
		release()
		p.log.Warn("shared CARTO pause unreadable; calling CARTO", "endpoint", endpoint, "error", err)
		return free, 0, false
	case !ok:
		release()
		return free, 0, false
	}
	if now := p.now(); now.Before(until) {
		release()
		p.mu.Lock()
		st.until = until
		p.mu.Unlock()
		return admission{}, until.Sub(now), true
	}
	return admission{endpoint: endpoint, probe: true, until: until, release: release}, 0, false
}

// paused records CARTO's 429 for a call: its endpoint is paused for wait.
func (p *pauses) paused(ctx context.Context, adm admission, wait time.Duration) {
	until := p.now().Add(wait)
	p.mu.Lock()
	st := p.get(adm.endpoint)
	if until.After(st.until) {
		st.until = until
	}
	st.armed = true
	if adm.probe {
		st.probing = false
	}
	p.mu.Unlock()
	if p.shared != nil {
		if err := p.shared.SetPause(context.WithoutCancel(ctx), adm.endpoint, until, until.Add(pauseMemory)); err != nil {
			p.log.Warn("CARTO pause not shared with other replicas", "endpoint", adm.endpoint, "error", err)
		}
	}
	p.done(adm)
}

// answered records that CARTO answered a call with something other than a
// 429 (or could not be reached: the circuit breaker's business): a probe's
// answer ends the pause.
func (p *pauses) answered(ctx context.Context, adm admission) {
	if !adm.probe {
		return
	}
	p.mu.Lock()
	st := p.get(adm.endpoint)
	st.armed, st.probing = false, false
	p.mu.Unlock()
	if p.shared != nil {
		if err := p.shared.ClearPause(context.WithoutCancel(ctx), adm.endpoint, adm.until); err != nil {
			p.log.Warn("shared CARTO pause not cleared; it expires by itself", "endpoint", adm.endpoint, "error", err)
		}
	}
	p.done(adm)
}

// abandoned ends a call that gave no verdict (its caller left, or it was
// never sent), so a probe right is not held.
func (p *pauses) abandoned(adm admission) {
	if !adm.probe {
		return
	}
	p.mu.Lock()
	p.get(adm.endpoint).probing = false
	p.mu.Unlock()
	p.done(adm)
}

func (p *pauses) done(adm admission) {
	if adm.release != nil {
		adm.release()
	}
}
