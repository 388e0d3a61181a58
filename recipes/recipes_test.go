package recipes

import (
	"errors"
	"github.com/unbrick/unbrick/step"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unbrick/unbrick/firmware"
)

const examples = "../testdata/recipes"

func testKeys(t testing.TB) *firmware.Keyring {
	t.Helper()
	var k firmware.Keyring
	if err := k.AddFile("unbrick-test", "../testdata/keys/unbrick-test.pub"); err != nil {
		t.Fatal(err)
	}
	return &k
}

func exampleFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(examples, "*.yaml"))
	if err != nil || len(files) < 6 {
		t.Fatalf("example recipes: %v, %v", files, err)
	}
	return files
}

func TestExamplesPassCheck(t *testing.T) {
	keys := testKeys(t)
	for _, f := range exampleFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			for _, err := range Check([]string{f}, keys) {
				t.Errorf("Check(%s): %v", f, err)
			}
		})
	}
}

// TestBrokenRecipes: each broken example fails Check with exactly its
// error, placed at file:line:col.
func TestBrokenRecipes(t *testing.T) {
	dir := filepath.Join(examples, "broken")
	tests := []struct {
		file string
		want []string
	}{
		{"syntax-error.yaml", []string{
			// Column 17 is the unquoted "banner: ready", the value to quote.
			`syntax-error.yaml:32:17: YAML syntax: mapping value is not allowed in this context (hint: check the indentation, and quote values that hold ': ' or start with a special character)`}},
		{"unknown-key.yaml", []string{
			`unknown-key.yaml:9:3: unknown key "baudrate" in serial (hint: did you mean "baud"? known keys are baud, parity, flow)`}},
		{"overlapping-protected.yaml", []string{
			`overlapping-protected.yaml:17:5: protected region "boot-config" 0x00007F00-0x00007FFF overlaps protected region "optiboot" 0x00007E00-0x00007FFF (line 14) (hint: protected regions must not overlap: merge them or fix their bounds)`}},
		{"writes-bootloader.yaml", []string{
			`writes-bootloader.yaml:36:9: write bootloader at 0x00007E00-0x00007FFF would touch the protected region "optiboot" 0x00007E00-0x00007FFF (hint: no step may erase or write a protected region: change the step's range, or the region if it is wrong)`}},
		{"missing-image.yaml", []string{
			`missing-image.yaml:22:11: image app: file ../testdata/recipes/images/uno-r3-2.1.0.hex does not exist (hint: put the file next to the recipe, or fix the path (it is relative to the recipe))`}},
		{"bad-signature.yaml", []string{
			`bad-signature.yaml:26:16: image app: signature ../images/sensor-b-1.2.0.hex.minisig: the signature does not match the image's bytes (key unbrick-test, id 7BBBDF99EDE334D4) (hint: sign the file again with a key the bench trusts; if the file is not what was signed, do not use it)`}},
	}
	keys := testKeys(t)
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join(dir, tt.file)
			var got []string
			for _, err := range Check([]string{path}, keys) {
				got = append(got, strings.TrimPrefix(err.Error(), dir+string(filepath.Separator)))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Check(%s) =\n%s\nwant\n%s", tt.file, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// recipe is a small valid recipe that tests change one line of.
const recipe = `name: t
version: 1
status: released
protocol: stm32
match: {chip: 0x410, revisions: [B1]}
serial: {baud: 115200, parity: even}
flash: {start: 0x08000000, size: 64K, page: 1K}
protected:
  - {name: cal, start: 0x0800FC00, size: 1K}
entry:
  - {line: power, level: asserted}
  - {wait: 50ms..80ms}
strategies:
  - name: s
    steps:
      - enter
      - erase:
        pages: 0..3
      - wait: 10ms
`

func parseString(t *testing.T, text string) (*Recipe, []string) {
	t.Helper()
	r, errs := Parse("r.yaml", []byte(text))
	if r != nil {
		errs = append(errs, r.validate()...)
	}
	sortErrors(errs)
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return r, out
}

func TestParseGood(t *testing.T) {
	r, errs := parseString(t, recipe)
	if len(errs) > 0 {
		t.Fatalf("Parse(recipe) = %v", errs)
	}
	if r.Match.Chip != 0x410 || r.Flash.Size != 64<<10 || r.Serial.Parity != "even" || !r.Released() {
		t.Errorf("Parse(recipe) = %+v", r)
	}
	if w := r.Entry[1]; w.Kind != ActWait || w.Wait != 50*time.Millisecond || w.Max != 80*time.Millisecond || w.Pos.String() != "r.yaml:12:5" {
		t.Errorf("entry wait = %+v at %s, want 50ms..80ms at r.yaml:12:5", w, w.Pos)
	}
	if e := r.Strategies[0].Steps[1]; e.Kind != step.KindErase || e.Region.Start != 0x08000000 || e.Region.Size != 4<<10 {
		t.Errorf("erase pages 0..3 = %+v, want 0x08000000 + 4 KiB", e)
	}
	if r.SHA256 != firmware.SHA256([]byte(recipe)) {
		t.Errorf("SHA256 = %s, want the hash of the file's bytes", r.SHA256)
	}
}

// TestParseErrors: each change to the good recipe gives exactly these
// errors, placed.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, old, new string
		want           []string
	}{
		{"wrong type", "version: 1", "version: [1]", []string{`r.yaml:2:10: version must be a number, not a list`}},
		{"no enter", "      - enter\n", "", []string{`r.yaml:16:9: step erase needs the unit in its bootloader`}},
		{"expect in the bootloader", "      - wait: 10ms", "      - expect: ready", []string{`r.yaml:19:9: step expect needs the unit's application running`}},
		{"boot_slot after reset", "      - wait: 10ms", "      - reset\n      - boot_slot: b", []string{`r.yaml:20:9: step boot_slot needs the unit in its bootloader`}},
		{"fraction", "version: 1", "version: 1.5", []string{`r.yaml:2:10: version must be a whole number, not 1.5`}},
		{"not a number", "size: 64K,", "size: lots,", []string{`r.yaml:7:34: flash size "lots" is not a 32-bit number`}},
		{"bad enum", "status: released", "status: done", []string{`r.yaml:3:9: status "done" is not one of draft, released`}},
		{"unknown step", "      - wait: 10ms", "      - flash: app", []string{`r.yaml:19:9: unknown step "flash"`}},
		{"bad regexp", "      - wait: 10ms", "      - reset\n      - expect: 'v(1'", []string{`r.yaml:20:17: expect "v(1" is not a valid regular expression: missing closing ): v(1`}},
		{"bad window", "50ms..80ms", "80ms..50ms", []string{`r.yaml:12:12: wait "80ms..50ms" is not a window: its upper end must be a time no shorter than its lower end`}},
		{"duplicate key", "version: 1", "version: 1\nversion: 2", []string{`r.yaml:3:1: key "version" appears twice in the recipe (first on line 2)`}},
		{"erase all", "      - wait: 10ms", "      - erase: all", []string{`r.yaml:19:9: erase all would erase the protected region "cal"`}},
		{"erase protected", "pages: 0..3", "pages: 60..63", []string{`r.yaml:17:9: erase at 0x0800F000-0x0800FFFF would touch the protected region "cal" 0x0800FC00-0x0800FFFF`}},
		{"erase outside", "pages: 0..3", "pages: 64..65", []string{`r.yaml:17:9: erase at 0x08010000-0x080107FF falls outside the part's flash 0x08000000-0x0800FFFF`}},
		{"restore without backup", "      - wait: 10ms", "      - restore: cfg", []string{`r.yaml:19:9: restore cfg: no backup of that name comes before it in strategy "s"`}},
		{"unknown image", "      - wait: 10ms", "      - write: app", []string{`r.yaml:19:9: step write names image "app", which the recipe does not define`}},
		{"two steps in one", "      - wait: 10ms", "      - wait: 10ms\n        reset:", []string{`r.yaml:20:9: step "wait" and step "reset" in one item`}},
		{"line level", "{line: power, level: asserted}", "{line: power, level: high}", []string{`r.yaml:11:26: level "high" is not one of asserted, released`}},
		{"overlap", "  - {name: cal, start: 0x0800FC00, size: 1K}", "  - {name: cal, start: 0x0800FC00, size: 1K}\n  - {name: cal2, start: 0x0800FE00, size: 1K}",
			[]string{`r.yaml:10:5: protected region "cal2" 0x0800FE00-0x080101FF lies outside the flash 0x08000000-0x0800FFFF`,
				`r.yaml:10:5: protected region "cal2" 0x0800FE00-0x080101FF overlaps protected region "cal" 0x0800FC00-0x0800FFFF (line 9)`}},
		{"stm32 without parity", "serial: {baud: 115200, parity: even}", "serial: {baud: 115200}", []string{`r.yaml:6:9: protocol stm32 needs serial parity even, not none`}},
		{"stm32 at odd parity", "serial: {baud: 115200, parity: even}", "serial: {baud: 115200, parity: odd}", []string{`r.yaml:6:9: protocol stm32 needs serial parity even, not odd`}},
		// Every error, not only the first.
		{"several", "status: released", "status: done\ncolour: red", []string{
			`r.yaml:3:9: status "done" is not one of draft, released`,
			`r.yaml:4:1: unknown key "colour" in the recipe`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := strings.Replace(recipe, tt.old, tt.new, 1)
			if text == recipe {
				t.Fatalf("%q is not in the recipe", tt.old)
			}
			_, got := parseString(t, text)
			var short []string
			for _, g := range got {
				short = append(short, strings.SplitN(g, " (hint: ", 2)[0])
			}
			if !slices.Equal(short, tt.want) {
				t.Errorf("Parse =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for _, g := range got {
				if !strings.Contains(g, "(hint: ") {
					t.Errorf("error %q has no hint", g)
				}
			}
		})
	}
}

// copyExample copies an example recipe and its images into a temporary
// directory, for tests that change an image.
func copyExample(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "images"), 0o755)
	imgs, _ := filepath.Glob(filepath.Join(examples, "images", "*"))
	for _, f := range append(imgs, filepath.Join(examples, name)) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(examples, f)
		if err := os.WriteFile(filepath.Join(dir, rel), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, name)
}

func TestLoadImagesRefusals(t *testing.T) {
	keys := testKeys(t)
	tests := []struct {
		name   string
		change func(t *testing.T, recipe string)
		class  string
		want   string
	}{
		{"tampered", func(t *testing.T, recipe string) {
			p := filepath.Join(filepath.Dir(recipe), "images", "sensor-b-1.2.0.hex")
			b, _ := os.ReadFile(p)
			b = []byte(strings.Replace(string(b), ":10000000", ":10000000", 1))
			im, _ := firmware.ParseHex(b)
			im.Segments[0].Data[0x300] ^= 1
			os.WriteFile(p, firmware.FormatHex(im.Segments, im.Entry), 0o644)
		}, "image-hash", "the bytes written hash to"},
		{"unsigned", func(t *testing.T, recipe string) {
			edit(t, recipe, "    signature: images/sensor-b-1.2.0.hex.minisig\n", "")
		}, "image-unsigned", "the image is not signed"},
		{"signature missing", func(t *testing.T, recipe string) {
			os.Remove(filepath.Join(filepath.Dir(recipe), "images", "sensor-b-1.2.0.hex.minisig"))
		}, "image-signature", "cannot read the signature"},
		{"other revision", func(t *testing.T, recipe string) {
			edit(t, recipe, "    revisions: [B1, B2]\n", "    revisions: [C1]\n")
		}, "image-revision", "built for revisions C1, but the recipe matches revisions B1, B2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := copyExample(t, "stm32f103-sensor-b.yaml")
			tt.change(t, path)
			r, errs := Load(path)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			ims, errs := LoadImages(r, keys)
			rf := ims["app"].Refusal
			if rf == nil || rf.Class != tt.class || !strings.Contains(rf.Reason, tt.want) || len(errs) != 1 {
				t.Errorf("LoadImages: refusal %+v, errors %v; want class %s with %q", rf, errs, tt.class, tt.want)
			}
		})
	}
	// Without trusted keys nothing is signed well enough.
	r, _ := Load(filepath.Join(examples, "stm32f103-sensor-b.yaml"))
	ims, _ := LoadImages(r, nil)
	if rf := ims["app"].Refusal; rf == nil || rf.Class != "image-signature" {
		t.Errorf("LoadImages(no keys): refusal %+v, want image-signature", rf)
	}
}

func edit(t *testing.T, path, old, new string) {
	t.Helper()
	b, _ := os.ReadFile(path)
	s := strings.Replace(string(b), old, new, 1)
	if s == string(b) {
		t.Fatalf("%q is not in %s", old, path)
	}
	os.WriteFile(path, []byte(s), 0o644)
}

func TestLoadExamples(t *testing.T) {
	keys := testKeys(t)
	r, ims, errs := CheckFile(filepath.Join(examples, "esp32-meter-e.yaml"), keys)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	app := ims["app"]
	if app.Addr != 0x10000 || len(app.Data) != 64<<10 || app.Signer != "unbrick-test" || app.SHA256 != r.Image("app").SHA256 {
		t.Errorf("app = addr %#x, %d bytes, signer %q, sha %s", app.Addr, len(app.Data), app.Signer, app.SHA256)
	}
	s := r.Strategies[1]
	if s.Steps[1].Kind != step.KindBackup || s.Steps[5].Kind != step.KindRestore || s.Steps[5].Name != "nvs" {
		t.Errorf("strategy %s = %+v, want backup ... restore nvs", s.Name, s.Steps)
	}
	_, ims, errs = CheckFile(filepath.Join(examples, "stm32f407-gateway-c.yaml"), keys)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if app := ims["app"]; app.Addr != 0x08000000 || len(app.Data) != 12<<10 {
		t.Errorf("ELF app = addr %#x, %d bytes; want 0x08000000, 12 KiB", app.Addr, len(app.Data))
	}
}

func TestLoadDir(t *testing.T) {
	rs, errs := LoadDir(examples)
	if len(errs) > 0 || len(rs) != 6 {
		t.Fatalf("LoadDir(examples) = %d recipes, %v; want 6, none", len(rs), errs)
	}
	r, err := Choose(rs, 0x410, "B2", false)
	if err != nil || r.Name != "sensor-b-stm32f103" {
		t.Errorf("Choose(examples, 0x410, B2) = %v, %v; want sensor-b-stm32f103", r, err)
	}
	if r, err := Choose(rs, 0xFFF0C101, "D1", false); err == nil {
		t.Errorf("Choose(examples, ESP8266, D1, production) = %s, want none: plug-d is a draft", r.Name)
	}
	if r, err := Choose(rs, 0xFFF0C101, "D1", true); err != nil || r.Name != "plug-d-esp8266" {
		t.Errorf("Choose(examples, ESP8266, D1, staging) = %v, %v; want plug-d-esp8266", r, err)
	}
	_, errs = LoadDir(filepath.Join(examples, "broken"))
	if len(errs) < 3 {
		t.Errorf("LoadDir(broken) = %d errors, want the load-time ones", len(errs))
	}
}

func TestChoose(t *testing.T) {
	mk := func(name string, chip uint32, revs []string, st Status, v int) *Recipe {
		return &Recipe{Name: name, Version: v, Status: st, Match: Match{Chip: chip, Revisions: revs}}
	}
	any1 := mk("any", 0x410, nil, Released, 1)
	b := mk("b", 0x410, []string{"B1", "B2"}, Released, 3)
	b4 := mk("b", 0x410, []string{"B1", "B2"}, Draft, 4)
	c := mk("c", 0x413, []string{"C1"}, Released, 1)
	rs := []*Recipe{any1, b, b4, c}
	tests := []struct {
		chip    uint32
		rev     string
		staging bool
		want    *Recipe
	}{
		{0x410, "B1", false, b},
		{0x410, "B1", true, b}, // released beats a newer draft
		{0x410, "B9", false, any1},
		{0x413, "C1", false, c},
		{0x413, "C2", false, nil},
		{0x999, "B1", false, nil},
	}
	for _, tt := range tests {
		got, err := Choose(rs, tt.chip, tt.rev, tt.staging)
		if got != tt.want || (tt.want == nil) != (err != nil) {
			t.Errorf("Choose(0x%X, %s, %v) = %v, %v; want %v", tt.chip, tt.rev, tt.staging, got, err, tt.want)
		}
	}
	if got, err := Choose([]*Recipe{b4}, 0x410, "B1", true); got != b4 || err != nil {
		t.Errorf("Choose(draft only, staging) = %v, %v; want the draft", got, err)
	}
	if _, err := Choose([]*Recipe{b, mk("other", 0x410, []string{"B1"}, Released, 3)}, 0x410, "B1", false); err == nil {
		t.Error("Choose(two recipes tied) succeeded, want an error")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(recipe))
	for _, name := range []string{"stm32f103-sensor-b.yaml", "esp32-meter-e.yaml", "uboot-hmi-a.yaml", "broken/syntax-error.yaml"} {
		if b, err := os.ReadFile(filepath.Join(examples, name)); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("strategies: [{name: x, steps: [enter, {erase: all}, {send: x, expect: '(', within: -1s}]}]"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, errs := Parse("f.yaml", in)
		if r != nil {
			errs = append(errs, r.validate()...)
		}
		for _, err := range errs {
			var e *Error
			if !errors.As(err, &e) || e.Pos.File != "f.yaml" || e.Pos.Line < 1 || e.Pos.Col < 1 {
				t.Fatalf("error %v is not placed in f.yaml", err)
			}
		}
	})
}

// BenchmarkCheckFile checks the sensor-b example: parse, validate, load and
// hash its image, verify its signature.
func BenchmarkCheckFile(b *testing.B) {
	keys := testKeys(b)
	path := filepath.Join(examples, "stm32f103-sensor-b.yaml")
	for b.Loop() {
		if _, _, errs := CheckFile(path, keys); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/recipe")
}
