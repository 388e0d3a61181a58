package db

import (
	"path/filepath"
	"testing"
)

// TestOpenConcurrently: two stores opening the same fresh database at once
// (a station and `unbrick records`) both succeed.
func TestOpenConcurrently(t *testing.T) {
	p := filepath.Join(t.TempDir(), "unbrick.db")
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := Open(p)
			if err == nil {
				err = s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
