package ubootsim

import (
	"fmt"
	"sync"
)

// chunkSize is the granularity of the sparse stores: untouched chunks take
// no memory, so a bench of units with 4 GiB eMMCs and 512 MiB of RAM each
// costs only what was written.
const chunkSize = 64 << 10

// sparse is a byte store of a fixed size in which unwritten bytes read as
// zero. It is safe for concurrent use.
type sparse struct {
	mu     sync.Mutex
	size   int64
	chunks map[int64]*[chunkSize]byte
}

func newSparse(size int64) *sparse {
	return &sparse{size: size, chunks: map[int64]*[chunkSize]byte{}}
}

func (s *sparse) check(off int64, n int) error {
	if off < 0 || n < 0 || off+int64(n) > s.size {
		return fmt.Errorf("access %#x+%d outside %d bytes", off, n, s.size)
	}
	return nil
}

// ReadAt copies len(p) bytes at off into p.
func (s *sparse) ReadAt(p []byte, off int64) error {
	if err := s.check(off, len(p)); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for done := 0; done < len(p); {
		at := off + int64(done)
		c, o := at/chunkSize, int(at%chunkSize)
		n := min(len(p)-done, chunkSize-o)
		if ch := s.chunks[c]; ch != nil {
			copy(p[done:done+n], ch[o:o+n])
		} else {
			clear(p[done : done+n])
		}
		done += n
	}
	return nil
}

// WriteAt stores p at off. Writing zeros over an untouched chunk keeps it
// untouched.
func (s *sparse) WriteAt(p []byte, off int64) error {
	if err := s.check(off, len(p)); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for done := 0; done < len(p); {
		at := off + int64(done)
		c, o := at/chunkSize, int(at%chunkSize)
		n := min(len(p)-done, chunkSize-o)
		ch := s.chunks[c]
		if ch == nil {
			if allZero(p[done : done+n]) {
				done += n
				continue
			}
			ch = new([chunkSize]byte)
			s.chunks[c] = ch
		}
		copy(ch[o:o+n], p[done:done+n])
		done += n
	}
	return nil
}

// Read returns a copy of n bytes at off.
func (s *sparse) Read(off int64, n int) ([]byte, error) {
	b := make([]byte, n)
	return b, s.ReadAt(b, off)
}

// copyTo copies n bytes at off into dst at doff, a chunk at a time so that
// untouched ranges stay untouched.
func (s *sparse) copyTo(dst *sparse, doff, off int64, n int64) error {
	if err := s.check(off, int(min(n, 1<<40))); err != nil {
		return err
	}
	if err := dst.check(doff, int(min(n, 1<<40))); err != nil {
		return err
	}
	buf := make([]byte, chunkSize)
	for done := int64(0); done < n; {
		k := min(n-done, chunkSize)
		if err := s.ReadAt(buf[:k], off+done); err != nil {
			return err
		}
		if err := dst.WriteAt(buf[:k], doff+done); err != nil {
			return err
		}
		done += k
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Disk is the unit's eMMC: a block device of 512-byte blocks that needs no
// erase before a write. Unwritten blocks read as zero.
type Disk struct{ s *sparse }

// BlockSize is the eMMC's block size.
const BlockSize = 512

// Size returns the capacity in bytes.
func (d *Disk) Size() int64 { return d.s.size }

// Blocks returns the capacity in blocks.
func (d *Disk) Blocks() int64 { return d.s.size / BlockSize }

// ReadAt reads len(p) bytes at byte offset off.
func (d *Disk) ReadAt(p []byte, off int64) error { return d.s.ReadAt(p, off) }

// WriteAt writes p at byte offset off, as a factory programmer would; for
// a test to set up or damage a unit.
func (d *Disk) WriteAt(p []byte, off int64) error { return d.s.WriteAt(p, off) }

// Read returns a copy of n bytes at byte offset off.
func (d *Disk) Read(off int64, n int) ([]byte, error) { return d.s.Read(off, n) }
