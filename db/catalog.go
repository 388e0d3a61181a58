package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Image is one firmware image in the catalog (the versions log).
type Image struct {
	SHA256  string    `json:"sha256"`
	Name    string    `json:"name"`
	Version string    `json:"version"`
	Purpose string    `json:"purpose"` // factory, app or recovery
	Targets []string  `json:"targets"` // hardware revisions it is built for
	Signer  string    `json:"signer,omitempty"`
	Size    int64     `json:"size"`
	Path    string    `json:"path,omitempty"`
	AddedBy string    `json:"added_by"`
	AddedAt time.Time `json:"added_at"`
}

// PutImage adds an image to the catalog. Adding the same sha256 again with
// the same name and version is a no-op apart from new targets; a different
// name or version for the same bytes is an error.
func (s *Store) PutImage(ctx context.Context, im Image) error {
	if len(im.SHA256) != 64 {
		return fmt.Errorf("db: image %q: sha256 %q is not 64 hex digits", im.Name, im.SHA256)
	}
	if im.AddedAt.IsZero() {
		im.AddedAt = time.Now()
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		var name, version string
		err := tx.QueryRow(`SELECT name, version FROM images WHERE sha256 = ?`, im.SHA256).Scan(&name, &version)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if _, err := tx.Exec(`INSERT INTO images (sha256, name, version, purpose, signer, size, path, added_by, added_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, im.SHA256, im.Name, im.Version, im.Purpose, im.Signer, im.Size, im.Path,
				im.AddedBy, ms(im.AddedAt)); err != nil {
				return fmt.Errorf("image %s: %w", im.Name, err)
			}
		case err != nil:
			return err
		case name != im.Name || version != im.Version:
			return fmt.Errorf("image %s %s has the same bytes (sha256 %.12s) as %s %s already in the catalog", im.Name, im.Version, im.SHA256, name, version)
		}
		for _, t := range im.Targets {
			if _, err := tx.Exec(`INSERT OR IGNORE INTO image_targets (sha256, revision) VALUES (?, ?)`, im.SHA256, t); err != nil {
				return err
			}
		}
		return nil
	})
}

// ErrNotFound is returned when a looked-up record does not exist.
var ErrNotFound = errors.New("db: not found")

// Image returns the catalog entry for a sha256.
func (s *Store) Image(ctx context.Context, sha string) (Image, error) {
	ims, err := s.images(ctx, `WHERE i.sha256 = ?`, sha)
	if err != nil {
		return Image{}, err
	}
	if len(ims) == 0 {
		return Image{}, fmt.Errorf("%w: no image with sha256 %s in the catalog", ErrNotFound, sha)
	}
	return ims[0], nil
}

// ImageFilter selects catalog entries; zero fields select everything.
type ImageFilter struct {
	Revision string
	Purpose  string
	Name     string
}

// Images lists catalog entries, newest first.
func (s *Store) Images(ctx context.Context, f ImageFilter) ([]Image, error) {
	var conds []string
	var args []any
	if f.Revision != "" {
		conds = append(conds, `EXISTS (SELECT 1 FROM image_targets t WHERE t.sha256 = i.sha256 AND t.revision = ?)`)
		args = append(args, f.Revision)
	}
	if f.Purpose != "" {
		conds, args = append(conds, "i.purpose = ?"), append(args, f.Purpose)
	}
	if f.Name != "" {
		conds, args = append(conds, "i.name = ?"), append(args, f.Name)
	}
	where := ""
	if len(conds) > 0 {
		where = "WHERE " + strings.Join(conds, " AND ")
	}
	return s.images(ctx, where, args...)
}

func (s *Store) images(ctx context.Context, where string, args ...any) ([]Image, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT i.sha256, i.name, i.version, i.purpose, i.signer, i.size, i.path, i.added_by, i.added_at,
			COALESCE((SELECT group_concat(revision, char(31)) FROM image_targets t WHERE t.sha256 = i.sha256), '')
		FROM images i `+where+` ORDER BY i.added_at DESC, i.name`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Image
	for rows.Next() {
		var im Image
		var added sql.NullInt64
		var targets string
		if err := rows.Scan(&im.SHA256, &im.Name, &im.Version, &im.Purpose, &im.Signer, &im.Size, &im.Path, &im.AddedBy, &added, &targets); err != nil {
			return nil, err
		}
		im.AddedAt = fromMS(added)
		if targets != "" {
			im.Targets = strings.Split(targets, "\x1f")
			sort.Strings(im.Targets)
		}
		out = append(out, im)
	}
	return out, rows.Err()
}
