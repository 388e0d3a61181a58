package recipes

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/unbrick/unbrick/firmware"
	"github.com/unbrick/unbrick/step"
)

// provisionSize is the most a provision step writes: the value, a NUL and
// padding.
const provisionSize = 64

const hintProtected = "no step may erase or write a protected region: change the step's range, or the region if it is wrong"

// validate checks what can be checked without the images: required parts,
// regions, step references.
func (r *Recipe) validate() []error {
	var errs []error
	fail := func(p Pos, hint, format string, args ...any) {
		errs = append(errs, &Error{Pos: p, Msg: fmt.Sprintf(format, args...), Hint: hint})
	}
	if r.Serial.Pos.Line == 0 {
		fail(r.Pos, "add serial: {baud: 115200}", "the recipe has no serial settings")
	}
	// The STM32 system bootloader frames 8E1 (AN3155 §2). At 8N1 a unit
	// syncs, since 0x7F and its ACK look the same in both framings, and
	// then fails at its first command (GET's 00 FF).
	if r.Protocol == "stm32" && r.Serial.Pos.Line != 0 && r.Serial.Parity != "even" {
		fail(r.Serial.Pos, "add parity: even under serial: the STM32 ROM speaks 8E1 (AN3155); at other parities a unit answers the sync byte and then fails at its first command",
			"protocol stm32 needs serial parity even, not %s", r.Serial.Parity)
	}
	if r.Flash.Pos.Line == 0 {
		fail(r.Pos, "add flash: {start: ..., size: ...}: the part's flash (for U-Boot, its storage)", "the recipe does not say where the part's flash is")
	}
	if len(r.Entry) == 0 {
		fail(r.Pos, "add entry: the line actions that put the unit in its bootloader", "the recipe has no entry sequence")
	}
	for i, p := range r.Protected {
		if p.Size == 0 {
			fail(p.Pos, "give the region's size", "protected region %q is empty", p.Name)
			continue
		}
		if r.Flash.Size > 0 && !within(p.Start, p.End(), r.Flash) {
			fail(p.Pos, "protected regions lie in the flash", "protected region %q %s lies outside the flash %s", p.Name, p, r.flashRegion())
		}
		for _, q := range r.Protected[:i] {
			if q.Size > 0 && overlaps(p.Start, p.End(), q.Start, q.End()) {
				fail(p.Pos, "protected regions must not overlap: merge them or fix their bounds",
					"protected region %q %s overlaps protected region %q %s (line %d)", p.Name, p, q.Name, q, q.Pos.Line)
			}
		}
	}
	seenImage := map[string]bool{}
	for _, im := range r.Images {
		seenImage[im.Name] = true
	}
	for si := range r.Strategies {
		s := &r.Strategies[si]
		backups := map[string]Step{}
		state := step.Off // where the unit is, by the step table's transitions
		for i := range s.Steps {
			st := &s.Steps[i]
			spec := st.Spec()
			if !spec.RunsIn(state, len(r.Boot) > 0) {
				fail(st.Pos, spec.Fix(), "step %s needs %s", st.Kind, spec.Needing(len(r.Boot) > 0))
			}
			state = spec.After(state)
			switch st.Kind {
			case step.KindWrite, step.KindVerify:
				if st.Image != "" && !seenImage[st.Image] {
					fail(st.Pos, "define it under images:, or use one of "+strings.Join(r.imageNames(), ", "), "step %s names image %q, which the recipe does not define", st.Kind, st.Image)
				}
			case step.KindErase:
				if st.All {
					if len(r.Protected) > 0 {
						fail(st.Pos, "erase the pages outside the protected regions instead", "erase all would erase the protected region %q", r.Protected[0].Name)
					}
					continue
				}
				if st.Pages > 0 {
					if r.Flash.Page == 0 {
						fail(st.Pos, "add page: (the erase page size) to flash:", "erase by pages needs the flash's page size")
						continue
					}
					st.Region = step.Region{Start: r.Flash.Start + st.FirstPage*r.Flash.Page, Size: st.Pages * r.Flash.Page}
				}
				errs = append(errs, r.writable(st.Pos, "erase", st.Region.Start, st.Region.End())...)
			case step.KindBackup:
				if r.Flash.Size > 0 && !within(st.Region.Start, st.Region.End(), r.Flash) {
					fail(st.Pos, "back up a region inside the flash", "backup %s %s lies outside the flash %s", st.Name, st.Region, r.flashRegion())
				}
				backups[st.Name] = *st
			case step.KindRestore:
				b, ok := backups[st.Name]
				if !ok {
					fail(st.Pos, "add a backup step of that name earlier in the same strategy", "restore %s: no backup of that name comes before it in strategy %q", st.Name, s.Name)
					continue
				}
				errs = append(errs, r.writable(st.Pos, "restore "+st.Name, b.Region.Start, b.Region.End())...)
			case step.KindProvision:
				errs = append(errs, r.writable(st.Pos, "provision "+st.Pool, st.Addr, uint64(st.Addr)+provisionSize)...)
			}
		}
	}
	if v := r.Validate; v.Image != "" && !seenImage[v.Image] {
		fail(v.Pos, "name an image defined under images:", "validate names image %q, which the recipe does not define", v.Image)
	}
	for _, g := range r.Diagnose {
		if g.Class == "" {
			fail(g.Pos, "name the failure class, e.g. bad-checksum", "diagnosis rule without a class")
		}
	}
	return errs
}

func (r *Recipe) imageNames() []string {
	var out []string
	for _, im := range r.Images {
		out = append(out, im.Name)
	}
	if len(out) == 0 {
		return []string{"(none defined)"}
	}
	return out
}

func (r *Recipe) flashRegion() Region { return Region{Start: r.Flash.Start, Size: r.Flash.Size} }

func within(start uint32, end uint64, f Flash) bool {
	return start >= f.Start && end <= f.End()
}

// writable checks that [start, end) lies in the flash and touches no
// protected region.
func (r *Recipe) writable(p Pos, what string, start uint32, end uint64) []error {
	var errs []error
	rg := Region{Start: start, Size: uint32(end - uint64(start))}
	if r.Flash.Size > 0 && !within(start, end, r.Flash) {
		errs = append(errs, &Error{Pos: p, Msg: fmt.Sprintf("%s at %s falls outside the part's flash %s", what, rg, r.flashRegion()),
			Hint: "check the address and size against the part's datasheet"})
	}
	for _, pr := range r.Protected {
		if pr.Size > 0 && overlaps(start, end, pr.Start, pr.End()) {
			errs = append(errs, &Error{Pos: p, Msg: fmt.Sprintf("%s at %s would touch the protected region %q %s", what, rg, pr.Name, pr), Hint: hintProtected})
		}
	}
	return errs
}

// Loaded is an image loaded for a recipe: the bytes written, their hash and
// signer, or why it must be refused.
type Loaded struct {
	Spec   *ImageSpec
	Addr   uint32
	Data   []byte // flattened: the bytes written
	SHA256 string // of Data
	Signer string
	// Refusal, if set, is why the image must not be written. Data may
	// still be set (a hash mismatch, a bad signature).
	Refusal *Refusal
}

// Refusal is why an image must not be written.
type Refusal struct {
	Class  string // image-missing, image-format, image-hash, image-unsigned, image-signature, image-revision
	Reason string
	Hint   string
	Pos    Pos
}

func (e *Refusal) Error() string { return (&Error{Pos: e.Pos, Msg: e.Reason, Hint: e.Hint}).Error() }

// LoadImages loads every image the recipe names, relative to the recipe
// file, and checks each: file present and readable in its format, the
// bytes written hash to the recipe's sha256, a minisign signature over the
// file by a key in keys, built for a revision the recipe matches. Every
// image gets an entry; a refused one carries its Refusal, also returned as
// an error.
func LoadImages(r *Recipe, keys *firmware.Keyring) (map[string]*Loaded, []error) {
	out := map[string]*Loaded{}
	var errs []error
	for _, spec := range r.Images {
		l := loadImage(r, spec, keys)
		out[spec.Name] = l
		if l.Refusal != nil {
			errs = append(errs, l.Refusal)
		}
	}
	return out, errs
}

func loadImage(r *Recipe, spec *ImageSpec, keys *firmware.Keyring) *Loaded {
	l := &Loaded{Spec: spec}
	refuse := func(class string, p Pos, hint, format string, args ...any) *Loaded {
		l.Refusal = &Refusal{Class: class, Pos: p, Hint: hint, Reason: fmt.Sprintf("image %s: ", spec.Name) + fmt.Sprintf(format, args...)}
		return l
	}
	file, err := os.ReadFile(spec.Path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return refuse("image-missing", spec.FilePos, "put the file next to the recipe, or fix the path (it is relative to the recipe)",
				"file %s does not exist", spec.Path)
		}
		return refuse("image-missing", spec.FilePos, "check the file's permissions", "cannot read %s: %v", spec.Path, errors.Unwrap(err))
	}
	f := spec.Format
	if f == "" {
		f = firmware.FormatOf(spec.Path, file)
	}
	if f == firmware.Raw && !spec.HasAddr {
		return refuse("image-format", spec.Pos, "add address: where the image is written", "a raw image needs an address")
	}
	im, err := firmware.Parse(spec.Path, file, f, spec.Addr)
	if err != nil {
		return refuse("image-format", spec.FilePos, "rebuild the image, or set format: if the extension misleads", "%v", err)
	}
	addr, data, err := im.Flatten(spec.Fill)
	if err != nil {
		return refuse("image-format", spec.FilePos, "check the image is built for this part", "%v", err)
	}
	l.Addr, l.Data, l.SHA256 = addr, data, firmware.SHA256(data)
	if spec.HasAddr && f != firmware.Raw && addr != spec.Addr {
		return refuse("image-format", spec.AddrPos, "drop address: (the file carries its addresses) or fix it",
			"the file starts at 0x%08X, but the recipe says address 0x%08X", addr, spec.Addr)
	}
	if spec.SHA256 != "" && l.SHA256 != spec.SHA256 {
		return refuse("image-hash", spec.SHAPos, "the file changed after the recipe was written: restore the right file, or (if the new one is right) sign it and update sha256",
			"the bytes written hash to %s, but the recipe says %s", l.SHA256, spec.SHA256)
	}
	if spec.Signature == "" {
		return refuse("image-unsigned", spec.Pos, "sign the image file with minisign and add signature: FILE.minisig", "the image is not signed")
	}
	sig, err := os.ReadFile(spec.Signature)
	if err != nil {
		return refuse("image-signature", spec.SigPos, "put the .minisig file next to the image, or fix the path", "cannot read the signature %s: %v", spec.Signature, errors.Unwrap(err))
	}
	signer, err := keys.Verify(file, sig)
	if err != nil {
		hint := "sign the file again with a key the bench trusts; if the file is not what was signed, do not use it"
		if errors.Is(err, firmware.ErrNoKeys) {
			hint = "give the bench's trusted public keys"
		}
		return refuse("image-signature", spec.SigPos, hint, "signature %s: %v", spec.SigFile, strings.TrimPrefix(err.Error(), "firmware: "))
	}
	l.Signer = signer
	if len(spec.Revisions) > 0 && len(r.Match.Revisions) > 0 && !slices.ContainsFunc(spec.Revisions, func(v string) bool { return slices.Contains(r.Match.Revisions, v) }) {
		return refuse("image-revision", spec.Pos, "use the image built for this recipe's revisions",
			"built for revisions %s, but the recipe matches revisions %s", strings.Join(spec.Revisions, ", "), strings.Join(r.Match.Revisions, ", "))
	}
	return l
}

// CheckWrites checks that every write step's image, as loaded, lies in the
// flash and touches no protected region.
func (r *Recipe) CheckWrites(images map[string]*Loaded) []error {
	var errs []error
	for _, s := range r.Strategies {
		for _, st := range s.Steps {
			if st.Kind != step.KindWrite {
				continue
			}
			l := images[st.Image]
			if l == nil || l.Data == nil {
				continue
			}
			errs = append(errs, r.writable(st.Pos, "write "+st.Image, l.Addr, uint64(l.Addr)+uint64(len(l.Data)))...)
		}
	}
	return errs
}

// CheckFile loads the recipe at path and its images and checks them all.
// It returns what it could load and every error, sorted by position.
func CheckFile(path string, keys *firmware.Keyring) (*Recipe, map[string]*Loaded, []error) {
	r, errs := Load(path)
	if r == nil {
		return nil, nil, errs
	}
	images, ierrs := LoadImages(r, keys)
	errs = append(errs, ierrs...)
	errs = append(errs, r.CheckWrites(images)...)
	sortErrors(errs)
	return r, images, errs
}

// Check checks recipe files and their images, with the signing keys the
// bench trusts, and returns every error found in every file.
func Check(files []string, keys *firmware.Keyring) []error {
	var errs []error
	for _, f := range files {
		_, _, e := CheckFile(f, keys)
		errs = append(errs, e...)
	}
	return errs
}

func errPos(err error) Pos {
	var e *Error
	var rf *Refusal
	switch {
	case errors.As(err, &e):
		return e.Pos
	case errors.As(err, &rf):
		return rf.Pos
	}
	return Pos{}
}

// SortErrors sorts errors by file, line and column (errors without a place
// first), keeping the order of errors at one place.
func SortErrors(errs []error) { sortErrors(errs) }

func sortErrors(errs []error) {
	slices.SortStableFunc(errs, func(a, b error) int {
		pa, pb := errPos(a), errPos(b)
		return cmp.Or(cmp.Compare(pa.File, pb.File), cmp.Compare(pa.Line, pb.Line), cmp.Compare(pa.Col, pb.Col))
	})
}

// LoadDir loads and validates every recipe (*.yaml, *.yml) in dir, in name
// order, returning those that have no error and the errors of the others.
func LoadDir(dir string) ([]*Recipe, []error) {
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return nil, []error{err}
		}
		files = append(files, m...)
	}
	slices.Sort(files)
	var out []*Recipe
	var errs []error
	for _, f := range files {
		r, e := Load(f)
		if len(e) > 0 {
			errs = append(errs, e...)
			continue
		}
		out = append(out, r)
	}
	return out, errs
}

// Choose returns the recipe for a unit whose bootloader reports chip and
// whose hardware revision is revision. A recipe naming the chip beats one
// accepting any; naming the revision beats accepting any; a released
// recipe beats a draft (drafts count only when staging); then the highest
// version wins. Two different recipes tied at the top are an error: the
// bench will not guess.
func Choose(rs []*Recipe, chip uint32, revision string, staging bool) (*Recipe, error) {
	type cand struct {
		r     *Recipe
		score [4]int
	}
	var cs []cand
	for _, r := range rs {
		if r == nil || (r.Match.Chip != 0 && r.Match.Chip != chip) {
			continue
		}
		if len(r.Match.Revisions) > 0 && !slices.Contains(r.Match.Revisions, revision) {
			continue
		}
		if !r.Released() && !staging {
			continue
		}
		c := cand{r: r}
		if r.Match.Chip != 0 {
			c.score[0] = 1
		}
		if len(r.Match.Revisions) > 0 {
			c.score[1] = 1
		}
		if r.Released() {
			c.score[2] = 1
		}
		c.score[3] = r.Version
		cs = append(cs, c)
	}
	if len(cs) == 0 {
		what := "released "
		if staging {
			what = ""
		}
		return nil, fmt.Errorf("recipes: no %srecipe matches chip 0x%X, hardware revision %q", what, chip, revision)
	}
	slices.SortStableFunc(cs, func(a, b cand) int { return slices.Compare(b.score[:], a.score[:]) })
	if len(cs) > 1 && cs[0].score == cs[1].score && cs[0].r.Name != cs[1].r.Name {
		return nil, fmt.Errorf("recipes: recipes %s (%s) and %s (%s) both match chip 0x%X, revision %q at version %d: narrow their match",
			cs[0].r.Name, cs[0].r.File, cs[1].r.Name, cs[1].r.File, chip, revision, cs[0].r.Version)
	}
	return cs[0].r, nil
}
