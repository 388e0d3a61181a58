package firmware

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Store keeps image bytes on disk, each in a file named by its SHA-256, so
// that a name always means the same bytes and a file can be checked by
// hashing it.
type Store struct {
	dir string
}

// OpenStore opens (creating it if needed) a store in dir.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("firmware: image store: %w", err)
	}
	return &Store{dir: dir}, nil
}

// ErrNotFound is returned for an image the store or the catalog does not
// hold.
var ErrNotFound = errors.New("firmware: no such image")

// ErrCorrupt is returned for a stored file whose bytes no longer hash to
// its name.
var ErrCorrupt = errors.New("firmware: stored image is corrupt")

func validHash(sha string) bool {
	if len(sha) != 64 {
		return false
	}
	for _, c := range sha {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

// Path returns where the image with the given hash lives (it may not exist).
func (s *Store) Path(sha string) string { return filepath.Join(s.dir, sha) }

// Put stores data and returns its SHA-256. It writes a temporary file,
// syncs it and renames it into place, so that a crash leaves either no file
// or the whole one. Storing bytes already there is a no-op.
func (s *Store) Put(data []byte) (string, error) {
	sha := SHA256(data)
	if _, err := os.Stat(s.Path(sha)); err == nil {
		return sha, nil
	}
	f, err := os.CreateTemp(s.dir, ".tmp-"+sha[:12]+"-*")
	if err != nil {
		return "", fmt.Errorf("firmware: image store: %w", err)
	}
	tmp := f.Name()
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(tmp)
		return "", fmt.Errorf("firmware: storing image %s: %w", sha, err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if err := os.Chmod(tmp, 0o444); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, s.Path(sha)); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("firmware: storing image %s: %w", sha, err)
	}
	if d, err := os.Open(s.dir); err == nil {
		d.Sync() // make the rename durable; not every file system supports it
		d.Close()
	}
	return sha, nil
}

// Get returns the bytes stored under sha, checking that they still hash to
// it.
func (s *Store) Get(sha string) ([]byte, error) {
	sha = strings.ToLower(sha)
	if !validHash(sha) {
		return nil, fmt.Errorf("firmware: %q is not a SHA-256 (64 hex digits)", sha)
	}
	b, err := os.ReadFile(s.Path(sha))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s is not in the store %s", ErrNotFound, sha, s.dir)
	}
	if err != nil {
		return nil, err
	}
	if got := SHA256(b); got != sha {
		return nil, fmt.Errorf("%w: %s now hashes to %s; delete it and add the image again", ErrCorrupt, s.Path(sha), got)
	}
	return b, nil
}

// Has reports whether the store holds sha.
func (s *Store) Has(sha string) bool {
	_, err := os.Stat(s.Path(strings.ToLower(sha)))
	return validHash(strings.ToLower(sha)) && err == nil
}
