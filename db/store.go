// Package db is the station's SQLite store: the recovery record of every
// unit (its attempts, their steps, console logs and backed-up regions), the
// firmware catalog, the pools of per-unit data (serial numbers, MACs), and
// slot health.
//
// One writer connection (BEGIN IMMEDIATE) does every write through a single
// goroutine that batches what arrives together into one transaction, each
// operation under its own savepoint; readers use a separate read-only pool.
// The database runs in WAL mode with synchronous=FULL, so an attempt is
// durable once FinishAttempt returns, even across a power cut.
//
// Each attempt's end also adds it, in the same transaction, to the
// dashboard's rollups and to its unit's visits, and compresses its console
// log (roll.go); the dashboard's queries read the rollups (dash.go), so
// they stay fast at ten million attempts. Exports stream, imports load
// them back, and Backup copies the database through SQLite's online
// backup while the station writes (export.go).
//
// Times are stored as Unix milliseconds.
package db

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/mattn/go-sqlite3" // the SQLite driver
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Store is an open station database. It is safe for concurrent use.
type Store struct {
	path string
	w    *sql.DB // one connection, all writes
	r    *sql.DB // read-only pool

	ops     chan op
	done    chan struct{}
	closing sync.Once
	mu      sync.RWMutex // guards closed; Lock to close the queue
	closed  bool
	errMu   sync.Mutex
	lastErr error // the last error of an asynchronous write
	obsMu   sync.RWMutex
	obs     Observer
}

// op is one write, run inside the writer's batch transaction.
type op struct {
	fn    func(*sql.Tx) error
	done  chan error // nil for fire-and-forget writes
	after func()     // run once the write has committed; may be nil
}

// Observer hears of what the record holds as each write commits (the
// station's Prometheus metrics). Its methods must not block.
type Observer interface {
	AttemptFinished(outcome, class, fault string, bytes int64)
	StepFinished(step, outcome string, d time.Duration)
}

// SetObserver makes o hear of every attempt and step that ends from now
// on; nil stops it.
func (s *Store) SetObserver(o Observer) {
	s.obsMu.Lock()
	s.obs = o
	s.obsMu.Unlock()
}

func (s *Store) observer() Observer {
	s.obsMu.RLock()
	defer s.obsMu.RUnlock()
	return s.obs
}

// batchMax bounds how many operations share one transaction.
const batchMax = 256

func dsn(p string, q url.Values) string {
	return "file:" + (&url.URL{Path: p}).EscapedPath() + "?" + q.Encode()
}

// Open opens (creating if needed) the database at path and brings its schema
// up to date.
func Open(p string) (*Store, error) {
	wq := url.Values{}
	wq.Set("_txlock", "immediate")
	wq.Set("_busy_timeout", "10000")
	wq.Set("_foreign_keys", "on")
	wq.Set("_journal_mode", "WAL")
	wq.Set("_synchronous", "FULL")
	w, err := sql.Open("sqlite3", dsn(p, wq))
	if err != nil {
		return nil, fmt.Errorf("db: open %s: %w", p, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxLifetime(0)
	if err := w.Ping(); err != nil {
		w.Close()
		return nil, fmt.Errorf("db: open %s: %w (is the directory writable?)", p, err)
	}
	if err := migrate(w); err != nil {
		w.Close()
		return nil, fmt.Errorf("db: %s: %w", p, err)
	}
	rq := url.Values{}
	rq.Set("mode", "ro")
	rq.Set("_busy_timeout", "10000")
	rq.Set("_foreign_keys", "on")
	r, err := sql.Open("sqlite3", dsn(p, rq))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("db: open %s read-only: %w", p, err)
	}
	r.SetMaxOpenConns(4)
	s := &Store{path: p, w: w, r: r, ops: make(chan op, 4096), done: make(chan struct{})}
	go s.writer()
	return s, nil
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// migrate applies the embedded migrations not yet recorded, each in its own
// transaction.
func migrate(w *sql.DB) error {
	if _, err := w.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	var have int
	if err := w.QueryRow(`SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return err
	}
	// Each migration is applied unless recorded, not only those above the
	// highest recorded: branches add numbered migrations in parallel, and
	// one merged later than a higher one must still run.
	done := map[int]bool{}
	vrows, err := w.Query(`SELECT version FROM schema_migrations`)
	if err != nil {
		return err
	}
	for vrows.Next() {
		var v int
		if err := vrows.Scan(&v); err != nil {
			vrows.Close()
			return err
		}
		done[v] = true
	}
	vrows.Close()
	latest := 0
	for _, n := range names {
		v, err := migrationVersion(n)
		if err != nil {
			return err
		}
		latest = max(latest, v)
	}
	if have > latest {
		return fmt.Errorf("the database has schema version %d but this unbrick knows only up to %d: run a newer unbrick, or point --data at another directory", have, latest)
	}
	for _, n := range names {
		v, _ := migrationVersion(n)
		if done[v] {
			continue
		}
		body, err := migrationFS.ReadFile(n)
		if err != nil {
			return err
		}
		// The writer's transactions are IMMEDIATE: another process opening
		// the same fresh database waits here, then finds the migration
		// applied and skips it.
		tx, err := w.Begin()
		if err != nil {
			return err
		}
		var applied int
		if err := tx.QueryRow(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, v).Scan(&applied); err != nil {
			tx.Rollback()
			return err
		}
		if applied > 0 {
			tx.Rollback()
			continue
		}
		if _, err := tx.Exec(string(body)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", path.Base(n), err)
		}
		if post := postMigrate[v]; post != nil {
			if err := post(tx); err != nil {
				tx.Rollback()
				return fmt.Errorf("migration %s: %w", path.Base(n), err)
			}
		}
		if _, err := tx.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`, v, path.Base(n), ms(time.Now())); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %s: %w", path.Base(n), err)
		}
	}
	return nil
}

func migrationVersion(name string) (int, error) {
	base := path.Base(name)
	i := strings.IndexByte(base, '_')
	if i < 0 {
		return 0, fmt.Errorf("migration %s: name must be NNNN_what.sql", base)
	}
	return strconv.Atoi(base[:i])
}

// SchemaVersion returns the schema version of the open database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// writer runs every write, batching what is queued together into one
// transaction.
func (s *Store) writer() {
	defer close(s.done)
	for first := range s.ops {
		batch := []op{first}
	fill:
		for len(batch) < batchMax {
			select {
			case o, ok := <-s.ops:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			default:
				break fill
			}
		}
		s.runBatch(batch)
	}
}

func (s *Store) runBatch(batch []op) {
	errs := make([]error, len(batch))
	tx, err := s.w.Begin()
	if err == nil {
		for i, o := range batch {
			errs[i] = savepoint(tx, o.fn)
		}
		err = tx.Commit()
	}
	for i, o := range batch {
		e := errs[i]
		if err != nil {
			e = fmt.Errorf("db: commit: %w", err)
		}
		if e == nil && o.after != nil {
			o.after()
		}
		if o.done != nil {
			o.done <- e
		} else if e != nil {
			s.errMu.Lock()
			s.lastErr = e
			s.errMu.Unlock()
		}
	}
}

func savepoint(tx *sql.Tx, fn func(*sql.Tx) error) error {
	if _, err := tx.Exec(`SAVEPOINT op`); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Exec(`ROLLBACK TO op`)
		tx.Exec(`RELEASE op`)
		return err
	}
	_, err := tx.Exec(`RELEASE op`)
	return err
}

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("db: store is closed")

// write runs fn in the writer and waits for its transaction to commit.
func (s *Store) write(ctx context.Context, fn func(*sql.Tx) error) error {
	done := make(chan error, 1)
	if err := s.enqueue(ctx, op{fn: fn, done: done}); err != nil {
		return err
	}
	// Once queued, the operation runs even if ctx ends: wait for it, so the
	// caller never reports failure for a write that landed.
	return <-done
}

// writeAsync queues fn; it blocks only while the queue is full.
func (s *Store) writeAsync(ctx context.Context, fn func(*sql.Tx) error) error {
	return s.enqueue(ctx, op{fn: fn})
}

// writeThen runs fn like write, then after once it has committed.
func (s *Store) writeThen(ctx context.Context, fn func(*sql.Tx) error, after func()) error {
	done := make(chan error, 1)
	if err := s.enqueue(ctx, op{fn: fn, done: done, after: after}); err != nil {
		return err
	}
	return <-done
}

func (s *Store) enqueue(ctx context.Context, o op) error {
	// The read lock keeps Close from closing the queue under a sender that
	// waits for room; Close takes the write lock.
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	select {
	case s.ops <- o:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Flush waits until every write queued before it has committed, and returns
// the last error of a fire-and-forget write since the previous Flush.
func (s *Store) Flush(ctx context.Context) error {
	if err := s.write(ctx, func(*sql.Tx) error { return nil }); err != nil {
		return err
	}
	s.errMu.Lock()
	defer s.errMu.Unlock()
	err := s.lastErr
	s.lastErr = nil
	return err
}

// Close writes what is queued and closes the database.
func (s *Store) Close() error {
	var err error
	s.closing.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.ops)
		s.mu.Unlock()
		<-s.done
		err = errors.Join(s.lastErr, s.r.Close(), s.w.Close())
	})
	return err
}

// IntegrityCheck runs PRAGMA integrity_check and returns an error listing
// what it found wrong.
func (s *Store) IntegrityCheck(ctx context.Context) error {
	rows, err := s.r.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return err
		}
		if m != "ok" {
			msgs = append(msgs, m)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(msgs) > 0 {
		return fmt.Errorf("db: integrity check of %s: %s", s.path, strings.Join(msgs, "; "))
	}
	return nil
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v sql.NullInt64) time.Time {
	if !v.Valid || v.Int64 == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64)
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}
