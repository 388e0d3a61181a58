package db

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// benchDB returns a database of n attempts over a year, generated once and
// cached in $UNBRICK_BENCH_DIR (default: the system's temp directory,
// unbrick-bench/): ten million attempts take the better part of an hour
// to generate on a loaded two-core machine.
func benchDB(b *testing.B, n int) *Store {
	b.Helper()
	dir := os.Getenv("UNBRICK_BENCH_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "unbrick-bench")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	p := filepath.Join(dir, fmt.Sprintf("attempts-%d-days-365-seed-1.db", n))
	if _, err := os.Stat(p); err != nil {
		t0 := time.Now()
		tmp := p + ".partial"
		os.Remove(tmp)
		// Above a million, the history is generated as copies of a
		// million attempts made by SQLite (GenerateOptions.Copies).
		if _, err := Generate(ctx, tmp, GenerateOptions{Attempts: n, Days: 365, Seed: 1, Copies: max(1, n/1_000_000)}); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, p); err != nil {
			b.Fatal(err)
		}
		b.Logf("generated %d attempts into %s in %v", n, p, time.Since(t0))
	}
	s, err := Open(p)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func benchDashboard(b *testing.B, n int) {
	s := benchDB(b, n)
	qs, err := dashboardQueries(ctx, s)
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range qs {
		b.Run(q.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := q.run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDashboard1M times every dashboard query at one million attempts
// (target: under 100 ms each).
func BenchmarkDashboard1M(b *testing.B) { benchDashboard(b, 1_000_000) }

// BenchmarkDashboard10M times them at ten million (target: under 300 ms).
// It runs only with UNBRICK_BENCH_10M=1 or when the database is cached.
func BenchmarkDashboard10M(b *testing.B) {
	if os.Getenv("UNBRICK_BENCH_10M") == "" {
		dir := os.Getenv("UNBRICK_BENCH_DIR")
		if dir == "" {
			dir = filepath.Join(os.TempDir(), "unbrick-bench")
		}
		if _, err := os.Stat(filepath.Join(dir, "attempts-10000000-days-365-seed-1.db")); err != nil {
			b.Skip("set UNBRICK_BENCH_10M=1 to generate ten million attempts (most of an hour), cached for later runs")
		}
	}
	benchDashboard(b, 10_000_000)
}
