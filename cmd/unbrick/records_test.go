package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/unbrick/unbrick/db"
)

func records(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := runRecords(context.Background(), args, &out, &errOut); err != nil {
		t.Fatalf("unbrick records %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

// TestRecordsTools generates a history, exports it as CSV and JSON, loads
// both back into new databases, and backs it up: each copy holds the same
// attempts and the same yield.
func TestRecordsTools(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	if out := records(t, "generate", "--db", src, "--attempts", "3000", "--days", "20"); !strings.Contains(out, "wrote 3000 attempts") {
		t.Errorf("generate said %q", out)
	}
	if out := records(t, "bench", "--db", src, "--runs", "1"); !strings.Contains(out, "yield by shift (year)") || !strings.Contains(out, "step times, revision and slot") {
		t.Errorf("bench printed %q", out)
	}
	want := summary(t, src)
	for _, f := range []string{"csv", "json"} {
		file := filepath.Join(dir, "export."+f)
		records(t, "export", "--db", src, "--format", f, "--out", file)
		dst := filepath.Join(dir, "from-"+f+".db")
		if out := records(t, "import", "--db", dst, file); !strings.Contains(out, "imported 3000 attempts") {
			t.Errorf("import %s said %q", f, out)
		}
		if got := summary(t, dst); got != want {
			t.Errorf("after export and import as %s: %s\nwant %s", f, got, want)
		}
		again := filepath.Join(dir, "again."+f)
		records(t, "export", "--db", dst, "--format", f, "--out", again)
		a, _ := os.ReadFile(file)
		b, _ := os.ReadFile(again)
		if !bytes.Equal(a, b) {
			t.Errorf("the %s export of the imported database differs from the original export", f)
		}
	}
	bk := filepath.Join(dir, "backup.db")
	if out := records(t, "backup", "--db", src, bk); !strings.Contains(out, "integrity_check") {
		t.Errorf("backup said %q", out)
	}
	if got := summary(t, bk); got != want {
		t.Errorf("backup: %s\nwant %s", got, want)
	}
	// A window of the history exports only its attempts.
	var out bytes.Buffer
	if err := runRecords(context.Background(), []string{"export", "--db", src, "--format", "csv", "--since", "2020-01-01", "--until", "2020-01-02"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\n"); n != 1 {
		t.Errorf("export of a day without attempts has %d lines, want the header only", n)
	}
	if err := runRecords(context.Background(), []string{"export", "--db", src, "--since", "last week"}, &out, &out); err == nil || !strings.Contains(err.Error(), "--since") {
		t.Errorf("export --since 'last week' = %v, want an error naming --since", err)
	}
}

// summary is the attempts and yields of a database, as text.
func summary(t *testing.T, p string) string {
	t.Helper()
	s, err := db.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var b strings.Builder
	for _, by := range []string{"all", "revision", "slot", "operator"} {
		gs, err := s.Groups(context.Background(), db.Range{}, by)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range gs {
			b.WriteString(by + " " + g.Key + " " + fmtCounts(g.Counts) + "; ")
		}
	}
	p2, err := s.Pareto(context.Background(), db.Range{})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range p2 {
		b.WriteString(x.Class + x.Fault + " " + itoa(x.Count) + "; ")
	}
	return b.String()
}

func fmtCounts(c db.Counts) string {
	return itoa(c.Attempts) + " " + itoa(c.Passed) + " " + itoa(c.UnitFaults) + " " + itoa(c.StationFaults) + " " + itoa(c.Visits) + " " +
		itoa(c.FirstPass) + " " + itoa(c.FinalPass) + " " + itoa(c.Bytes) + " " + itoa(c.BusyMS)
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
