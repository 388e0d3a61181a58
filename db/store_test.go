package db

import (
	"path/filepath"
	"strings"
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

// TestFinishWithoutImage: an attempt that planned an image but passed
// without writing one (its fallback slot booted) names no image.
func TestFinishWithoutImage(t *testing.T) {
	s := open(t)
	if err := s.UpsertUnit(ctx, Unit{Serial: "U2"}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		noImage bool
		want    string
	}{{true, ""}, {false, strings.Repeat("d", 64)}} {
		id, err := s.StartAttempt(ctx, AttemptStart{Serial: "U2", Slot: 1, Recipe: "r", ImageSHA256: strings.Repeat("d", 64), ImageVersion: "2.1"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.FinishAttempt(ctx, id, Finish{Outcome: Passed, Strategy: "boot-fallback-slot", NoImage: tt.noImage}); err != nil {
			t.Fatal(err)
		}
		a, err := s.Attempt(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if a.ImageSHA256 != tt.want || (tt.noImage && a.ImageVersion != "") {
			t.Errorf("NoImage %v: image %q v%q, want %q", tt.noImage, a.ImageSHA256, a.ImageVersion, tt.want)
		}
	}
}
