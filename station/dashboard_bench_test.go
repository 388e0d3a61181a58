package station

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/unbrick/unbrick/db"
	"github.com/unbrick/unbrick/jobs"
	"github.com/unbrick/unbrick/web"
)

// BenchmarkDashboardPage times what the dashboard page asks when it opens
// on a year of history: /api/dashboard (every figure at once) and each
// chart, over the databases BenchmarkDashboard1M and 10M in package db
// generate and cache ($UNBRICK_BENCH_DIR, default the temp directory's
// unbrick-bench/). It skips a size not generated yet.
func BenchmarkDashboardPage(b *testing.B) {
	dir := os.Getenv("UNBRICK_BENCH_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "unbrick-bench")
	}
	for _, n := range []int{1_000_000, 10_000_000} {
		b.Run(fmt.Sprintf("%dM", n/1_000_000), func(b *testing.B) {
			p := filepath.Join(dir, fmt.Sprintf("attempts-%d-days-365-seed-1.db", n))
			if _, err := os.Stat(p); err != nil {
				b.Skipf("%s is not generated: run go test ./db -bench Dashboard first", p)
			}
			s, err := db.Open(p)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			bus := &jobs.Bus{}
			tr := jobs.NewTracker(map[int]string{1: "a"})
			bus.Track(tr)
			srv := web.New(web.Config{Tracker: tr, Bus: bus, Records: webRecords{s: s}})
			defer srv.Close()
			ts := httptest.NewServer(srv)
			defer ts.Close()
			for _, path := range []string{"/api/dashboard?since=8760h&every=day", "/api/dashboard?since=8760h&every=shift&revision=rev-C&slot=13",
				"/api/charts/yield.svg?since=8760h", "/api/charts/uph.svg?since=8760h", "/api/charts/steps.svg?since=8760h"} {
				b.Run(path, func(b *testing.B) {
					for b.Loop() {
						resp, err := http.Get(ts.URL + path)
						if err != nil {
							b.Fatal(err)
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 {
							b.Fatalf("GET %s = %d", path, resp.StatusCode)
						}
					}
				})
			}
		})
	}
}
