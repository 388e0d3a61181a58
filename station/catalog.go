package station

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/unbrick/unbrick/db"
	"github.com/unbrick/unbrick/firmware"
)

// CatalogBook records every image the book's recipes may write in the
// firmware catalog (the versions log, in the database), with its hash,
// version, purpose, target revisions and signer, and keeps its bytes in
// the content-addressed store under DataDir/images. Images the station
// refuses are left out: they never reach a unit.
func (st *Station) CatalogBook(ctx context.Context, book *Book) error {
	store, err := firmware.OpenStore(filepath.Join(st.cfg.DataDir, "images"))
	if err != nil {
		return err
	}
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
			err := st.Store.PutImage(ctx, db.Image{SHA256: firmware.SHA256(im.Data), Name: filepath.Base(spec.File), Version: im.Version,
				Purpose: string(spec.Purpose), Targets: im.Revisions, Signer: im.Signer, Size: int64(len(im.Data)),
				AddedBy: fmt.Sprintf("recipe %s v%d", r.Name, r.Version)})
			if err != nil {
				return fmt.Errorf("%s: image %s: %w", r.File, spec.Name, err)
			}
		}
	}
	return nil
}
