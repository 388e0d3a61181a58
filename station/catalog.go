package station

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/unbrick/unbrick/db"
	"github.com/unbrick/unbrick/firmware"
)

// catalogStorage keeps the firmware catalog (the versions log) in the
// database, for firmware.Catalog.
type catalogStorage struct{ s *db.Store }

var _ firmware.CatalogStorage = catalogStorage{}

func (c catalogStorage) PutEntry(ctx context.Context, e firmware.Entry) error {
	return c.s.PutImage(ctx, db.Image{SHA256: e.SHA256, Name: e.Name, Version: e.Version, Purpose: string(e.Purpose),
		Targets: e.Revisions, Signer: e.Signer, Size: e.Size, AddedBy: e.AddedBy, AddedAt: e.AddedAt})
}

func (c catalogStorage) Entry(ctx context.Context, sha string) (firmware.Entry, error) {
	im, err := c.s.Image(ctx, sha)
	if errors.Is(err, db.ErrNotFound) {
		return firmware.Entry{}, fmt.Errorf("%w: %v", firmware.ErrNotFound, err)
	}
	if err != nil {
		return firmware.Entry{}, err
	}
	return entry(im), nil
}

func (c catalogStorage) Entries(ctx context.Context, f firmware.Filter) ([]firmware.Entry, error) {
	ims, err := c.s.Images(ctx, db.ImageFilter{Revision: f.Revision, Purpose: string(f.Purpose), Name: f.Name})
	if err != nil {
		return nil, err
	}
	out := make([]firmware.Entry, len(ims))
	for i, im := range ims {
		out[i] = entry(im)
	}
	return out, nil
}

func entry(im db.Image) firmware.Entry {
	return firmware.Entry{SHA256: im.SHA256, Name: im.Name, Version: im.Version, Purpose: firmware.Purpose(im.Purpose),
		Revisions: im.Targets, Signer: im.Signer, Size: im.Size, AddedBy: im.AddedBy, AddedAt: im.AddedAt}
}

// CatalogBook records every image the book's recipes may write in the
// firmware catalog, with its hash, version, purpose, target revisions and
// signer, and keeps its bytes in the content-addressed store under
// DataDir/images. Images the station refuses are left out: they never
// reach a unit.
func (st *Station) CatalogBook(ctx context.Context, book *Book) error {
	store, err := firmware.OpenStore(filepath.Join(st.cfg.DataDir, "images"))
	if err != nil {
		return err
	}
	cs := catalogStorage{st.Store}
	for _, r := range book.Recipes {
		p := book.Plans[r.Name]
		for _, spec := range r.Images {
			im := p.Images[spec.Name]
			if im == nil || im.Refusal != nil {
				continue
			}
			if _, err := store.Put(im.Data); err != nil {
				return err
			}
			e := firmware.Entry{SHA256: firmware.SHA256(im.Data), Name: filepath.Base(spec.File), Version: im.Version,
				Purpose: spec.Purpose, Revisions: im.Revisions, Signer: im.Signer, Size: int64(len(im.Data)),
				AddedBy: fmt.Sprintf("recipe %s v%d", r.Name, r.Version)}
			if err := cs.PutEntry(ctx, e); err != nil {
				return fmt.Errorf("%s: image %s: %w", r.File, spec.Name, err)
			}
		}
	}
	return nil
}
