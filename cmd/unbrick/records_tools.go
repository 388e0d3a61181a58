package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/unbrick/unbrick/db"
)

// recordTools are the subcommands of unbrick records.
var recordTools = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{
	"generate": runRecordsGenerate,
	"bench":    runRecordsBench,
	"export":   runRecordsExport,
	"import":   runRecordsImport,
	"backup":   runRecordsBackup,
	"prune":    runRecordsPrune,
	"rebuild":  runRecordsRebuild,
}

func dbPath(data, file string) string {
	if file != "" {
		return file
	}
	return filepath.Join(data, "unbrick.db")
}

// dbFlags adds the --data and --db flags every records tool takes and
// returns the database path they name, once the flags are parsed.
func dbFlags(fs *flag.FlagSet) func() string {
	data := fs.String("data", "./var", "the data directory holding unbrick.db")
	file := fs.String("db", "", "the database file (instead of DIR/unbrick.db)")
	return func() string { return dbPath(*data, *file) }
}

func runRecordsGenerate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("records generate", "--attempts N --days D [--units U] [--db FILE | --data DIR]", stderr)
	data := fs.String("data", "./var", "the data directory holding unbrick.db")
	file := fs.String("db", "", "the database file to create (instead of DIR/unbrick.db)")
	attempts := fs.Int("attempts", 1000000, "attempts to write")
	days := fs.Int("days", 365, "spread over this many days up to now")
	units := fs.Int("units", 0, "distinct units (0: 3 in 10 attempts)")
	slots := fs.Int("slots", 32, "slots")
	revs := fs.Int("revisions", 7, "hardware revisions")
	seed := fs.Uint64("seed", 1, "random seed (the same seed gives the same history)")
	copies := fs.Int("copies", 1, "generate attempts/copies one by one and the rest as shifted copies made by SQLite (much faster for 10 million)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	p := dbPath(*data, *file)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	t0 := time.Now()
	n, err := db.Generate(ctx, p, db.GenerateOptions{Attempts: *attempts, Days: *days, Units: *units, Slots: *slots, Revisions: *revs, Seed: *seed, Copies: *copies})
	if err != nil {
		return err
	}
	fi, _ := os.Stat(p)
	var size int64
	if fi != nil {
		size = fi.Size()
	}
	fmt.Fprintf(stdout, "wrote %d attempts over %d days into %s (%d MB) in %v\n", n, *days, p, size>>20, time.Since(t0).Round(time.Millisecond))
	return nil
}

func runRecordsBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("records bench", "[--db FILE | --data DIR] [--runs N]", stderr)
	path := dbFlags(fs)
	runs := fs.Int("runs", 5, "runs of each query; the median is printed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	s, err := db.Open(path())
	if err != nil {
		return err
	}
	defer s.Close()
	res, err := db.BenchDashboard(ctx, s, *runs)
	if err != nil {
		return err
	}
	for _, r := range res {
		fmt.Fprintf(stdout, "%-44s %8.1f ms  (%d rows)\n", r.Name, float64(r.Median)/1e6, r.Rows)
	}
	return nil
}

func parseWhen(flagName, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", time.DateOnly} {
		if t, err := time.ParseInLocation(layout, v, time.Local); err == nil {
			return t, nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--%s %q: give a time (2026-03-01, 2026-03-01T06:00, RFC 3339) or a duration back from now (24h)", flagName, v)
}

func runRecordsExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("records export", "--format csv|json [--since T] [--until T] [--data DIR] [--out FILE]", stderr)
	path := dbFlags(fs)
	format := fs.String("format", "csv", "csv or json")
	since := fs.String("since", "", "attempts started at or after this time")
	until := fs.String("until", "", "attempts started before this time")
	out := fs.String("out", "", "write to this file instead of standard output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	f := db.Filter{}
	var err error
	if f.Since, err = parseWhen("since", *since); err != nil {
		return err
	}
	if f.Until, err = parseWhen("until", *until); err != nil {
		return err
	}
	s, err := db.Open(path())
	if err != nil {
		return err
	}
	defer s.Close()
	w := stdout
	if *out != "" {
		of, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer of.Close()
		w = of
	}
	return s.Export(ctx, w, *format, f)
}

func runRecordsImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("records import", "FILE.csv|FILE.json [--format csv|json] [--data DIR]", stderr)
	path := dbFlags(fs)
	format := fs.String("format", "", "csv or json (default: from the file's extension)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("records import: name one exported file")
	}
	in := fs.Arg(0)
	fm := *format
	if fm == "" {
		fm = map[string]string{".csv": "csv", ".json": "json"}[filepath.Ext(in)]
		if fm == "" {
			return fmt.Errorf("records import %s: say --format csv or --format json", in)
		}
	}
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	s, err := db.Open(path())
	if err != nil {
		return err
	}
	defer s.Close()
	n, err := s.Import(ctx, f, fm, in)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %d attempts from %s\n", n, in)
	return nil
}

func runRecordsBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("records backup", "FILE [--data DIR]", stderr)
	path := dbFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("records backup: name the file to write, e.g. unbrick records backup /mnt/usb/unbrick-backup.db")
	}
	s, err := db.Open(path())
	if err != nil {
		return err
	}
	defer s.Close()
	t0 := time.Now()
	if err := s.Backup(ctx, fs.Arg(0)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backed up %s to %s in %v; it passes PRAGMA integrity_check\n", s.Path(), fs.Arg(0), time.Since(t0).Round(time.Millisecond))
	return nil
}

func runRecordsPrune(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("records prune", "--console-days N [--data DIR]", stderr)
	path := dbFlags(fs)
	days := fs.Int("console-days", 0, "delete console logs of attempts that ended more than N days ago (outcomes are kept)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *days <= 0 {
		return fmt.Errorf("records prune: say how many days of console logs to keep, e.g. --console-days 90")
	}
	s, err := db.Open(path())
	if err != nil {
		return err
	}
	defer s.Close()
	n, err := s.PruneConsole(ctx, time.Now().AddDate(0, 0, -*days))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "deleted the console logs of %d attempts older than %d days; their outcomes are kept\n", n, *days)
	return nil
}

func runRecordsRebuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("records rebuild", "[--data DIR]", stderr)
	path := dbFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	s, err := db.Open(path())
	if err != nil {
		return err
	}
	defer s.Close()
	t0 := time.Now()
	if err := s.RebuildRollups(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rebuilt the dashboard rollups in %v\n", time.Since(t0).Round(time.Millisecond))
	return nil
}

// pruneConsoles applies the console log retention at start and every six
// hours until ctx ends.
func pruneConsoles(ctx context.Context, s *db.Store, days int, log *slog.Logger) {
	t := time.NewTicker(6 * time.Hour)
	defer t.Stop()
	for {
		n, err := s.PruneConsole(ctx, time.Now().AddDate(0, 0, -days))
		if err != nil && ctx.Err() == nil {
			log.Warn("console log retention failed", "err", err)
		} else if n > 0 {
			log.Info("console logs past retention deleted; their outcomes are kept", "attempts", n, "days", days)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
