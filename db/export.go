package db

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// Exports hold the attempts' rows, oldest first, one at a time from the
// database to the writer: memory stays constant whatever their number. CSV
// has a header row (exportHeader); JSON is an array of objects shaped like
// Attempt. Times are RFC 3339 in UTC to the millisecond, as stored, so an
// import gives back the same values. Steps, console logs and artifacts are
// not exported.

var exportHeader = []string{"id", "serial", "slot", "slot_name", "recipe", "recipe_version", "recipe_sha256", "revision",
	"image_sha256", "image_version", "strategy", "outcome", "class", "fault", "reason", "hint", "last_step",
	"bytes_written", "operator", "started", "finished", "seconds"}

const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// Export writes the attempts f selects (f.Limit is ignored) as "csv" or
// "json".
func (s *Store) Export(ctx context.Context, w io.Writer, format string, f Filter) error {
	switch format {
	case "csv", "json":
	default:
		return fmt.Errorf("db: export format %q: use csv or json", format)
	}
	where, args := f.where()
	rows, err := s.r.QueryContext(ctx, `SELECT `+attemptCols+` FROM attempts`+where+` ORDER BY started_at, id`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	bw := bufio.NewWriterSize(w, 64<<10)
	var cw *csv.Writer
	var je *json.Encoder
	if format == "csv" {
		cw = csv.NewWriter(bw)
		cw.Write(exportHeader)
	} else {
		je = json.NewEncoder(bw)
		bw.WriteString("[\n")
	}
	n := 0
	for rows.Next() {
		a, err := scanAttempt(rows)
		if err != nil {
			return err
		}
		if cw != nil {
			fin, secs := "", ""
			if !a.Finished.IsZero() {
				fin = a.Finished.UTC().Format(timeLayout)
				secs = strconv.FormatFloat(a.Finished.Sub(a.Started).Seconds(), 'f', 3, 64)
			}
			cw.Write([]string{strconv.FormatInt(a.ID, 10), a.Serial, strconv.Itoa(a.Slot), a.SlotName, a.Recipe,
				strconv.Itoa(a.RecipeVersion), a.RecipeSHA256, a.Revision, a.ImageSHA256, a.ImageVersion, a.Strategy,
				string(a.Outcome), a.Class, a.Fault, a.Reason, a.Hint, a.LastStep, strconv.FormatInt(a.Bytes, 10), a.Operator,
				a.Started.UTC().Format(timeLayout), fin, secs})
		} else {
			if n > 0 {
				bw.WriteString(",")
			}
			a.Started, a.Finished = a.Started.UTC(), a.Finished.UTC()
			if err := je.Encode(a); err != nil {
				return err
			}
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if cw != nil {
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
	} else {
		bw.WriteString("]\n")
	}
	return bw.Flush()
}

// ExportCSV writes the attempts the filter selects as CSV, oldest first,
// with a header row.
func (s *Store) ExportCSV(ctx context.Context, w io.Writer, f Filter) error {
	return s.Export(ctx, w, "csv", f)
}

// Import loads attempts exported by Export ("csv" or "json"; name is the
// file's name for error messages) in one transaction, creates the units
// they name, and rebuilds the rollups. An attempt whose id is already in
// the database is an error: import into a new database, or one holding
// other attempts. It returns how many attempts it loaded.
func (s *Store) Import(ctx context.Context, r io.Reader, format, name string) (int, error) {
	var next func() (Attempt, string, error) // the attempt and where it is
	switch format {
	case "csv":
		cr := csv.NewReader(bufio.NewReaderSize(r, 64<<10))
		cr.ReuseRecord = true
		head, err := cr.Read()
		if err != nil {
			return 0, fmt.Errorf("%s:1: reading the header: %w", name, err)
		}
		if strings.Join(head, ",") != strings.Join(exportHeader, ",") {
			return 0, fmt.Errorf("%s:1: the header is %q; an unbrick export starts with %q", name, strings.Join(head, ","), strings.Join(exportHeader, ","))
		}
		next = func() (Attempt, string, error) {
			rec, err := cr.Read()
			if err != nil {
				return Attempt{}, "", err
			}
			line, _ := cr.FieldPos(0)
			at := fmt.Sprintf("%s:%d", name, line)
			a, err := attemptFromCSV(rec)
			if err != nil {
				var fe *fieldError
				if errors.As(err, &fe) {
					_, col := cr.FieldPos(fe.i)
					at = fmt.Sprintf("%s:%d:%d", name, line, col)
				}
			}
			return a, at, err
		}
	case "json":
		dec := json.NewDecoder(bufio.NewReaderSize(r, 64<<10))
		if t, err := dec.Token(); err != nil || t != json.Delim('[') {
			return 0, fmt.Errorf("%s: an unbrick JSON export is an array of attempts (got %v, %v)", name, t, err)
		}
		i := 0
		next = func() (Attempt, string, error) {
			if !dec.More() {
				return Attempt{}, "", io.EOF
			}
			i++
			var a Attempt
			at := fmt.Sprintf("%s: attempt %d (byte %d)", name, i, dec.InputOffset())
			err := dec.Decode(&a)
			return a, at, err
		}
	default:
		return 0, fmt.Errorf("db: import format %q: use csv or json", format)
	}
	n := 0
	err := s.write(ctx, func(tx *sql.Tx) error {
		ins, err := tx.Prepare(`INSERT INTO attempts (id, unit_serial, slot, slot_name, recipe, recipe_version, recipe_sha256, revision,
			image_sha256, image_version, strategy, outcome, class, fault, reason, hint, last_step, bytes_written, operator, started_at, finished_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		unit, err := tx.Prepare(`INSERT INTO units (serial, revision, first_seen, last_seen) VALUES (?, ?, ?, ?)
			ON CONFLICT(serial) DO UPDATE SET first_seen = MIN(first_seen, excluded.first_seen), last_seen = MAX(last_seen, excluded.last_seen)`)
		if err != nil {
			return err
		}
		defer unit.Close()
		for {
			if n%10000 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			a, at, err := next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("%s: %w", at, err)
			}
			if a.Serial != "" {
				if _, err := unit.Exec(a.Serial, a.Revision, ms(a.Started), ms(a.Started)); err != nil {
					return fmt.Errorf("%s: unit %s: %w", at, a.Serial, err)
				}
			}
			var fin any
			if !a.Finished.IsZero() {
				fin = ms(a.Finished)
			}
			if a.Outcome == "" {
				a.Outcome = Running
			}
			_, err = ins.Exec(a.ID, nullStr(a.Serial), a.Slot, a.SlotName, a.Recipe, a.RecipeVersion, a.RecipeSHA256, a.Revision,
				a.ImageSHA256, a.ImageVersion, a.Strategy, string(a.Outcome), a.Class, a.Fault, a.Reason, a.Hint, a.LastStep, a.Bytes,
				a.Operator, ms(a.Started), fin)
			if err != nil {
				if strings.Contains(err.Error(), "UNIQUE constraint failed: attempts.id") {
					return fmt.Errorf("%s: attempt %d is already in the database: import into a new database (--data or --db) or one without these attempts", at, a.ID)
				}
				return fmt.Errorf("%s: attempt %d: %w", at, a.ID, err)
			}
			n++
		}
		return rebuildRollups(tx)
	})
	if err != nil {
		return 0, fmt.Errorf("db: import: %w", err)
	}
	return n, nil
}

type fieldError struct {
	i   int
	err error
}

func (e *fieldError) Error() string { return fmt.Sprintf("column %s: %v", exportHeader[e.i], e.err) }

func attemptFromCSV(rec []string) (Attempt, error) {
	if len(rec) != len(exportHeader) {
		return Attempt{}, fmt.Errorf("%d fields, want %d", len(rec), len(exportHeader))
	}
	var a Attempt
	var err error
	num := func(i int) int64 {
		if err != nil {
			return 0
		}
		v, e := strconv.ParseInt(rec[i], 10, 64)
		if e != nil {
			err = &fieldError{i, fmt.Errorf("%q is not a whole number", rec[i])}
		}
		return v
	}
	when := func(i int) time.Time {
		if err != nil || rec[i] == "" {
			return time.Time{}
		}
		t, e := time.Parse(time.RFC3339Nano, rec[i])
		if e != nil {
			err = &fieldError{i, fmt.Errorf("%q is not an RFC 3339 time", rec[i])}
		}
		return t
	}
	a.ID = num(0)
	a.Serial = rec[1]
	a.Slot = int(num(2))
	a.SlotName, a.Recipe = rec[3], rec[4]
	a.RecipeVersion = int(num(5))
	a.RecipeSHA256, a.Revision, a.ImageSHA256, a.ImageVersion, a.Strategy = rec[6], rec[7], rec[8], rec[9], rec[10]
	a.Outcome, a.Class, a.Fault, a.Reason, a.Hint, a.LastStep = Outcome(rec[11]), rec[12], rec[13], rec[14], rec[15], rec[16]
	a.Bytes = num(17)
	a.Operator = rec[18]
	a.Started = when(19)
	a.Finished = when(20)
	return a, err
}

// Backup copies the database to a new file at path through SQLite's online
// backup API (https://www.sqlite.org/backup.html), from one read snapshot:
// the station keeps writing meanwhile (WAL), and the copy is consistent as
// of the moment the backup began. The copy is then checked with PRAGMA
// integrity_check.
func (s *Store) Backup(ctx context.Context, path string) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("db: backup: %s exists; name a new file (a backup never overwrites)", path)
	}
	dst, err := sql.Open("sqlite3", dsn(path, url.Values{}))
	if err != nil {
		return err
	}
	defer dst.Close()
	dconn, err := dst.Conn(ctx)
	if err != nil {
		return fmt.Errorf("db: backup to %s: %w", path, err)
	}
	defer dconn.Close()
	sconn, err := s.r.Conn(ctx)
	if err != nil {
		return err
	}
	defer sconn.Close()
	err = dconn.Raw(func(d any) error {
		return sconn.Raw(func(src any) error {
			dc, ok1 := d.(*sqlite3.SQLiteConn)
			sc, ok2 := src.(*sqlite3.SQLiteConn)
			if !ok1 || !ok2 {
				return errors.New("the connections are not SQLite's")
			}
			b, err := dc.Backup("main", sc, "main")
			if err != nil {
				return err
			}
			// One step copies every page under one read transaction, so
			// writers (WAL) never make it start over.
			if _, err := b.Step(-1); err != nil {
				b.Finish()
				return err
			}
			return b.Finish()
		})
	})
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("db: backup to %s: %w", path, err)
	}
	var res string
	if err := dconn.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res); err != nil {
		return fmt.Errorf("db: backup %s: integrity check: %w", path, err)
	}
	if res != "ok" {
		return fmt.Errorf("db: backup %s fails its integrity check: %s", path, res)
	}
	return nil
}
