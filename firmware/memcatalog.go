package firmware

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
)

// MemoryCatalog is a CatalogStorage in memory.
type MemoryCatalog struct {
	mu      sync.Mutex
	entries map[string]Entry
}

var _ CatalogStorage = (*MemoryCatalog)(nil)

// PutEntry implements CatalogStorage.
func (m *MemoryCatalog) PutEntry(_ context.Context, e Entry) error {
	if !validHash(e.SHA256) {
		return fmt.Errorf("firmware: image %q: sha256 %q is not 64 lower-case hex digits", e.Name, e.SHA256)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.entries == nil {
		m.entries = map[string]Entry{}
	}
	old, ok := m.entries[e.SHA256]
	if !ok {
		e.Revisions = slices.Clone(e.Revisions)
		sort.Strings(e.Revisions)
		m.entries[e.SHA256] = e
		return nil
	}
	if old.Name != e.Name || old.Version != e.Version {
		return fmt.Errorf("firmware: image %s %s has the same bytes (sha256 %.12s) as %s %s already in the catalog", e.Name, e.Version, e.SHA256, old.Name, old.Version)
	}
	for _, r := range e.Revisions {
		if !slices.Contains(old.Revisions, r) {
			old.Revisions = append(old.Revisions, r)
		}
	}
	sort.Strings(old.Revisions)
	m.entries[e.SHA256] = old
	return nil
}

// Entry implements CatalogStorage.
func (m *MemoryCatalog) Entry(_ context.Context, sha string) (Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[sha]
	if !ok {
		return Entry{}, fmt.Errorf("%w: no image with sha256 %s in the catalog", ErrNotFound, sha)
	}
	e.Revisions = slices.Clone(e.Revisions)
	return e, nil
}

// Entries implements CatalogStorage.
func (m *MemoryCatalog) Entries(_ context.Context, f Filter) ([]Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Entry
	for _, e := range m.entries {
		if (f.Revision != "" && !slices.Contains(e.Revisions, f.Revision)) || (f.Purpose != "" && e.Purpose != f.Purpose) || (f.Name != "" && e.Name != f.Name) {
			continue
		}
		e.Revisions = slices.Clone(e.Revisions)
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].AddedAt.Equal(out[j].AddedAt) {
			return out[i].AddedAt.After(out[j].AddedAt)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}
