package station

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// BenchmarkDemo8 recovers 8 bricked units of mixed families at once on the
// paced virtual bench (115200 baud, 1 ms turnaround), as `make run` does.
// It reports the wall time of the whole bench against its slowest unit's own
// attempt: the station's parallelism target is that 8 units take hardly
// longer than the slowest of them (x-slowest near 1), and the heap the
// station keeps while it works.
func BenchmarkDemo8(b *testing.B) {
	for range b.N {
		d, err := NewDemo(DemoConfig{Dir: b.TempDir(), Units: 8, Kinds: []string{"stm32f103", "stm32f407", "atmega328p"}})
		if err != nil {
			b.Fatal(err)
		}
		var peak uint64
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			var ms runtime.MemStats
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					runtime.ReadMemStats(&ms)
					peak = max(peak, ms.HeapInuse)
				}
			}
		}()
		start := time.Now()
		res, err := d.RunAll(context.Background())
		took := time.Since(start)
		close(stop)
		<-sampled
		if err != nil {
			b.Fatal(err)
		}
		var slowest time.Duration
		for _, r := range res {
			if r.Outcome != "passed" {
				b.Fatalf("slot %d: %s %v", r.Slot, r.Outcome, r.Failure)
			}
			slowest = max(slowest, r.Finished.Sub(r.Started))
		}
		d.Close()
		b.ReportMetric(took.Seconds(), "s/bench")
		b.ReportMetric(slowest.Seconds(), "s/slowest-unit")
		b.ReportMetric(took.Seconds()/slowest.Seconds(), "x-slowest")
		b.ReportMetric(float64(peak)/(1<<20), "MiB-heap")
	}
}
