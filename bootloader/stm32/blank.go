package stm32

// span is a half-open address range [lo, hi).
type span struct{ lo, hi uint64 }

// addSpan returns s with r added, kept sorted, disjoint and merged.
func addSpan(s []span, r span) []span {
	if r.lo >= r.hi {
		return s
	}
	out := make([]span, 0, len(s)+1)
	for _, x := range s {
		switch {
		case x.hi < r.lo || x.lo > r.hi:
			out = append(out, x)
		default: // overlapping or touching: merge into r
			r.lo, r.hi = min(r.lo, x.lo), max(r.hi, x.hi)
		}
	}
	out = append(out, r)
	for i := len(out) - 1; i > 0 && out[i].lo < out[i-1].lo; i-- {
		out[i], out[i-1] = out[i-1], out[i]
	}
	return out
}

// cutSpan returns s without r.
func cutSpan(s []span, r span) []span {
	if r.lo >= r.hi {
		return s
	}
	out := s[:0:0]
	for _, x := range s {
		if x.hi <= r.lo || x.lo >= r.hi {
			out = append(out, x)
			continue
		}
		if x.lo < r.lo {
			out = append(out, span{x.lo, r.lo})
		}
		if x.hi > r.hi {
			out = append(out, span{r.hi, x.hi})
		}
	}
	return out
}

// inSpans reports whether r lies wholly inside one span of s.
func inSpans(s []span, r span) bool {
	for _, x := range s {
		if x.lo <= r.lo && r.hi <= x.hi {
			return true
		}
	}
	return false
}

// allFF reports whether every byte of b is 0xFF (erased flash).
func allFF(b []byte) bool {
	for _, v := range b {
		if v != 0xFF {
			return false
		}
	}
	return true
}

// SkippedBlocks returns how many 256-byte blocks WriteMemory left unsent
// because they were all 0xFF in flash this client had erased.
func (c *Client) SkippedBlocks() int { return c.skipped }

// held is flash whose content the client knows from GET_CHECKSUM: the
// ROM's CRC of [addr, addr+len(data)) matched data's.
type held struct {
	addr uint64
	data []byte
}

// holds reports whether the client knows flash at addr to hold b already
// (b padded with 0xFF to a multiple of 4, as Write pads it).
func (c *Client) holds(addr uint64, b []byte) bool {
	n := uint64((len(b) + 3) &^ 3)
	for _, h := range c.held {
		if h.addr <= addr && addr+n <= h.addr+uint64(len(h.data)) {
			got := h.data[addr-h.addr : addr-h.addr+n]
			for i, v := range got {
				w := byte(0xFF)
				if i < len(b) {
					w = b[i]
				}
				if v != w {
					return false
				}
			}
			return true
		}
	}
	return false
}

// forget drops what the client knows of flash in r: a WRITE there may
// have changed it.
func (c *Client) forget(r span) {
	c.blank = cutSpan(c.blank, r)
	kept := c.held[:0]
	for _, h := range c.held {
		if h.addr+uint64(len(h.data)) <= r.lo || h.addr >= r.hi {
			kept = append(kept, h)
		}
	}
	c.held = kept
}
