package forward

import (
	"runtime"
	"testing"
)

// StreamWorkers: the default scales with GOMAXPROCS and has a floor, an explicit
// count is kept, and a negative one leaves grpc's goroutine per call (no option).
func TestStreamWorkers(t *testing.T) {
	for _, tc := range []struct {
		set, want int
	}{
		{0, max(MinDefaultStreamWorkers, DefaultStreamWorkersPerCPU*runtime.GOMAXPROCS(0))},
		{5, 5},
		{-1, 0},
	} {
		f, err := New(Config{Self: "a", StreamWorkers: tc.set})
		if err != nil {
			t.Fatal(err)
		}
		if f.cfg.StreamWorkers != tc.want {
			t.Errorf("StreamWorkers %d: got %d workers, want %d", tc.set, f.cfg.StreamWorkers, tc.want)
		}
		withWorkers := len(f.ServerOptions())
		_ = f.Close()
		if tc.want == 0 {
			f2, err := New(Config{Self: "a", StreamWorkers: 1})
			if err != nil {
				t.Fatal(err)
			}
			if n := len(f2.ServerOptions()); n != withWorkers+1 {
				t.Errorf("StreamWorkers -1: %d server options, want one fewer than with workers (%d)", withWorkers, n)
			}
			_ = f2.Close()
		}
	}
}
