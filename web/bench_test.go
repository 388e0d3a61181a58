package web_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/unbrick/unbrick/jobs"
	"github.com/unbrick/unbrick/web"
)

// BenchmarkPublish measures what the web server costs a job that publishes
// progress: the time of one Bus.Publish with websocket clients connected,
// some of which read nothing at all. Publish must stay as cheap with
// stuck clients as without (run with -benchtime=200000x or more so that
// the stuck clients fill their buffers).
func BenchmarkPublish(b *testing.B) {
	for _, tc := range []struct{ healthy, stuck int }{{0, 0}, {8, 0}, {8, 2}} {
		b.Run(fmt.Sprintf("clients=%d/stuck=%d", tc.healthy, tc.stuck), func(b *testing.B) {
			bn := newBenchNamed(b, map[int]string{1: "a", 2: "b", 3: "c", 4: "d"}, func(c *web.Config) { c.WriteTimeout = time.Minute })
			for range tc.stuck {
				dialB(b, bn) // never read
			}
			for range tc.healthy {
				c := dialB(b, bn)
				go func() {
					for {
						if _, _, err := c.NextReader(); err != nil {
							return
						}
					}
				}()
			}
			var worst time.Duration
			for i := 0; b.Loop(); i++ {
				t0 := time.Now()
				bn.bus.Publish(jobs.Event{Slot: 1 + i%4, Kind: jobs.KindProgress, Done: int64(i % 1000), Total: 1000})
				worst = max(worst, time.Since(t0))
			}
			b.ReportMetric(float64(worst.Microseconds()), "worst-µs")
		})
	}
}

func dialB(b *testing.B, bn *bench) *websocket.Conn {
	c, _, err := websocket.DefaultDialer.Dial(wsURL(bn), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}
