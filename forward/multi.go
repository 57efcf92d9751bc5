package forward

import (
	"context"
	"errors"
	"fmt"
)

// GroupByOwner groups keys by their owner: owner ID → indexes into keys, in order, so
// that a multi-key request can be split into one call per owner. Keys whose owner
// cannot be found (an empty ring) are grouped under "".
func GroupByOwner(ring Ring, keys []string) map[string][]int {
	out := make(map[string][]int)
	for i, k := range keys {
		o, err := ring.Owner(k)
		if err != nil {
			o = ""
		}
		out[o] = append(out[o], i)
	}
	return out
}

// Quorum calls call for every owner at once and returns nil as soon as need of them
// succeeded, cancelling the context of the rest; it returns once every call has
// returned, so no goroutine outlives it. When need successes become impossible it
// cancels the rest and returns an error wrapping ErrNotEnough and every call's error
// (errors.Is / errors.As see them). need ≤ 0 succeeds at once.
func Quorum(ctx context.Context, owners []string, need int, call func(ctx context.Context, owner string) error) error {
	if need <= 0 {
		return nil
	}
	if need > len(owners) {
		return fmt.Errorf("%w: need %d successes from %d owners", ErrNotEnough, need, len(owners))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		owner string
		err   error
	}
	results := make(chan result, len(owners))
	for _, o := range owners {
		go func() {
			results <- result{owner: o, err: call(ctx, o)}
		}()
	}
	ok, failed := 0, 0
	var errs []error
	var done error
	decided := false
	for range owners {
		r := <-results
		if decided {
			continue
		}
		if r.err == nil {
			ok++
		} else {
			failed++
			errs = append(errs, fmt.Errorf("%s: %w", r.owner, r.err))
		}
		switch {
		case ok >= need:
			decided = true
			cancel()
		case failed > len(owners)-need:
			decided = true
			cancel()
			done = fmt.Errorf("%w: %d of %d owners succeeded, need %d: %w", ErrNotEnough, ok, len(owners), need, errors.Join(errs...))
		}
	}
	return done
}
