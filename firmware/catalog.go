package firmware

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Purpose says what an image is for.
type Purpose string

// Purposes.
const (
	Factory  Purpose = "factory"  // the full image a unit leaves the factory with
	App      Purpose = "app"      // the application alone
	Recovery Purpose = "recovery" // a minimal image that brings a unit back to where it can be updated
)

// Valid reports whether p is one of the known purposes.
func (p Purpose) Valid() bool { return p == Factory || p == App || p == Recovery }

// Entry is one image in the catalog (the versions log).
type Entry struct {
	SHA256    string // of the bytes written (the flattened image)
	Name      string
	Version   string
	Purpose   Purpose
	Revisions []string // the hardware revisions it is built for
	Signer    string   // the trusted key that signed it
	Size      int64
	AddedBy   string
	AddedAt   time.Time
}

// Filter selects catalog entries; zero fields select everything.
type Filter struct {
	Revision string
	Purpose  Purpose
	Name     string
}

// CatalogStorage keeps catalog entries. The station implements it with the
// database; MemoryCatalog is an in-memory one for tests and the virtual
// bench.
type CatalogStorage interface {
	// PutEntry records an entry. The same SHA-256 again with the same name
	// and version only adds revisions; with another name or version it is
	// an error.
	PutEntry(ctx context.Context, e Entry) error
	// Entry returns the entry for a SHA-256, or an error wrapping
	// ErrNotFound.
	Entry(ctx context.Context, sha string) (Entry, error)
	// Entries lists entries, newest first.
	Entries(ctx context.Context, f Filter) ([]Entry, error)
}

// Catalog adds images to the store and the versions log after checking
// their signature, and hands them out checked again.
type Catalog struct {
	storage CatalogStorage
	store   *Store
	keys    *Keyring
}

// NewCatalog returns a catalog keeping entries in storage and bytes in
// store, trusting the signing keys in keys.
func NewCatalog(storage CatalogStorage, store *Store, keys *Keyring) *Catalog {
	return &Catalog{storage: storage, store: store, keys: keys}
}

// Add checks the signature sig over file (the image file as shipped:
// minisign signs files), loads it in format f (raw images are placed at
// addr), stores the flattened bytes and records e for them. It fills in and
// returns e's SHA256, Size, Signer and AddedAt.
func (c *Catalog) Add(ctx context.Context, e Entry, file []byte, f Format, addr uint32, sig []byte) (Entry, error) {
	switch {
	case e.Name == "":
		return e, errors.New("firmware: catalog: an image needs a name")
	case e.Version == "":
		return e, fmt.Errorf("firmware: catalog: image %s needs a version", e.Name)
	case !e.Purpose.Valid():
		return e, fmt.Errorf("firmware: catalog: image %s: purpose %q is not factory, app or recovery", e.Name, e.Purpose)
	case len(e.Revisions) == 0:
		return e, fmt.Errorf("firmware: catalog: image %s: name the hardware revisions it is built for", e.Name)
	case e.AddedBy == "":
		return e, fmt.Errorf("firmware: catalog: image %s: say who adds it", e.Name)
	}
	signer, err := c.keys.Verify(file, sig)
	if err != nil {
		return e, fmt.Errorf("catalog: image %s %s: %w", e.Name, e.Version, err)
	}
	im, err := Parse(e.Name, file, f, addr)
	if err != nil {
		return e, err
	}
	_, data, err := im.Flatten(0xFF)
	if err != nil {
		return e, err
	}
	sha, err := c.store.Put(data)
	if err != nil {
		return e, err
	}
	e.SHA256, e.Size, e.Signer = sha, int64(len(data)), signer
	if e.AddedAt.IsZero() {
		e.AddedAt = time.Now()
	}
	if err := c.storage.PutEntry(ctx, e); err != nil {
		return e, err
	}
	return e, nil
}

// Get returns the entry and the bytes for sha, the bytes checked against
// the hash.
func (c *Catalog) Get(ctx context.Context, sha string) (Entry, []byte, error) {
	e, err := c.storage.Entry(ctx, strings.ToLower(sha))
	if err != nil {
		return e, nil, err
	}
	b, err := c.store.Get(e.SHA256)
	return e, b, err
}

// List lists the catalog's entries, newest first.
func (c *Catalog) List(ctx context.Context, f Filter) ([]Entry, error) {
	return c.storage.Entries(ctx, f)
}

// RefusalError says why an image must not be written to a unit.
type RefusalError struct {
	Class  string // "image-unknown", "image-revision"
	Reason string
}

func (e *RefusalError) Error() string { return e.Reason }

// Allow checks that the catalog knows sha and that it is built for the
// hardware revision; the error is a *RefusalError.
func (c *Catalog) Allow(ctx context.Context, sha, revision string) (Entry, error) {
	e, err := c.storage.Entry(ctx, strings.ToLower(sha))
	if errors.Is(err, ErrNotFound) {
		return e, &RefusalError{Class: "image-unknown", Reason: fmt.Sprintf("image %.12s is not in the catalog: add it (signed) before writing it", sha)}
	}
	if err != nil {
		return e, err
	}
	if revision != "" && !slices.Contains(e.Revisions, revision) {
		return e, &RefusalError{Class: "image-revision",
			Reason: fmt.Sprintf("image %s %s is built for revisions %s, not for revision %s", e.Name, e.Version, strings.Join(e.Revisions, ", "), revision)}
	}
	return e, nil
}
