package recipes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	rsyntax "regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/unbrick/unbrick/internal/yamlpos"
	"github.com/unbrick/unbrick/step"

	"github.com/unbrick/unbrick/firmware"
)

// Load reads, parses and validates the recipe file at path. It returns the
// recipe (nil only when the file could not be read or parsed at all) and
// every error found. It does not load the images: see LoadImages and Check.
func Load(path string) (*Recipe, []error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, []error{&Error{Pos: Pos{File: path, Line: 1, Col: 1}, Msg: fmt.Sprintf("cannot read the recipe: %v", errors.Unwrap(err)),
			Hint: "check the path"}}
	}
	r, errs := Parse(path, data)
	if r != nil {
		errs = append(errs, r.validate()...)
	}
	sortErrors(errs)
	return r, errs
}

// Parse parses a recipe file's bytes; file names it in errors and is the
// base for the image paths. It checks the syntax, keys, types, steps and
// regular expressions, not the regions (see Load).
func Parse(file string, data []byte) (*Recipe, []error) {
	d := &decoder{file: file}
	root, err := yamlpos.Parse(file, data)
	if err != nil {
		return nil, []error{err}
	}
	r := &Recipe{File: file, SHA256: firmware.SHA256(data), Pos: Pos{File: file, Line: 1, Col: 1}}
	if root == nil {
		return nil, []error{&Error{Pos: r.Pos, Msg: "the recipe is empty", Hint: "start from one of testdata/recipes"}}
	}
	d.recipe(r, root)
	sortErrors(d.errs)
	return r, d.errs
}

type decoder struct {
	file string
	errs []error
}

func (d *decoder) pos(n *yamlpos.Node) Pos { return n.Pos(d.file) }

func (d *decoder) fail(n *yamlpos.Node, hint, format string, args ...any) {
	d.errs = append(d.errs, &Error{Pos: d.pos(n), Msg: fmt.Sprintf(format, args...), Hint: hint})
}

func kindName(n *yamlpos.Node) string {
	switch n.Kind {
	case yamlpos.MappingNode:
		return "a mapping"
	case yamlpos.SequenceNode:
		return "a list"
	}
	switch n.Tag {
	case "!!null":
		return "nothing"
	case "!!bool":
		return "a boolean (" + n.Value + ")"
	case "!!int":
		return "a number (" + n.Value + ")"
	case "!!float":
		return "a number (" + n.Value + ")"
	}
	return fmt.Sprintf("%q", n.Value)
}

// fields checks that n is a mapping with only known keys, each once, and
// returns the values by key and the key nodes.
func (d *decoder) fields(n *yamlpos.Node, what string, required []string, known ...string) (map[string]*yamlpos.Node, map[string]*yamlpos.Node) {
	vals, keys := map[string]*yamlpos.Node{}, map[string]*yamlpos.Node{}
	if n.Kind != yamlpos.MappingNode {
		d.fail(n, "write it as key: value lines", "%s must be a mapping, not %s", what, kindName(n))
		return vals, keys
	}
	all := append(slices.Clone(required), known...)
	var suggested []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !slices.Contains(all, k.Value) {
			hint := "known keys are " + strings.Join(all, ", ")
			if m := closest(k.Value, all); m != "" {
				hint = fmt.Sprintf("did you mean %q? known keys are %s", m, strings.Join(all, ", "))
				suggested = append(suggested, m)
			}
			d.fail(k, hint, "unknown key %q in %s", k.Value, what)
			continue
		}
		if prev, dup := keys[k.Value]; dup {
			d.fail(k, "remove one of them", "key %q appears twice in %s (first on line %d)", k.Value, what, prev.Line)
			continue
		}
		vals[k.Value], keys[k.Value] = v, k
	}
	for _, k := range required {
		// A misspelt key already said what is missing.
		if vals[k] == nil && !slices.Contains(suggested, k) {
			d.fail(n, "add "+k+": to "+what, "%s has no %q", what, k)
		}
	}
	return vals, keys
}

func (d *decoder) str(n *yamlpos.Node, what string) string {
	if n == nil {
		return ""
	}
	if n.Kind != yamlpos.ScalarNode || n.Tag == "!!null" {
		d.fail(n, "write it as text", "%s must be text, not %s", what, kindName(n))
		return ""
	}
	return n.Value
}

func (d *decoder) oneOf(n *yamlpos.Node, what string, allowed ...string) string {
	s := d.str(n, what)
	if n != nil && s != "" && !slices.Contains(allowed, s) || n != nil && n.Kind == yamlpos.ScalarNode && s == "" {
		d.fail(n, "use one of "+strings.Join(allowed, ", "), "%s %q is not one of %s", what, s, strings.Join(allowed, ", "))
		return ""
	}
	return s
}

func (d *decoder) strs(n *yamlpos.Node, what string) []string {
	if n == nil {
		return nil
	}
	if n.Kind != yamlpos.SequenceNode {
		d.fail(n, "write a list: [a, b]", "%s must be a list, not %s", what, kindName(n))
		return nil
	}
	var out []string
	for _, c := range n.Content {
		if s := d.str(c, what+" item"); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// num parses a number: decimal, 0x hex, 0o octal, 0b binary, underscores,
// and for sizes a K or M suffix (KiB, MiB).
func (d *decoder) num(n *yamlpos.Node, what string, bits int) uint64 {
	if n == nil {
		return 0
	}
	if n.Kind == yamlpos.ScalarNode && n.Tag == "!!float" {
		d.fail(n, "write a whole number such as 4096, 0x1000 or 4K", "%s must be a whole number, not %s", what, n.Value)
		return 0
	}
	if n.Kind != yamlpos.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!str") {
		d.fail(n, "write a number such as 4096, 0x1000 or 4K", "%s must be a number, not %s", what, kindName(n))
		return 0
	}
	s, mul := n.Value, uint64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		s, mul = strings.TrimSuffix(s, "K"), 1<<10
	case strings.HasSuffix(s, "M"):
		s, mul = strings.TrimSuffix(s, "M"), 1<<20
	}
	v, err := strconv.ParseUint(s, 0, bits)
	if err != nil || (mul > 1 && v > (uint64(1)<<bits-1)/mul) {
		d.fail(n, "write a number such as 4096, 0x1000 or 4K", "%s %q is not a %d-bit number", what, n.Value, bits)
		return 0
	}
	return v * mul
}

func (d *decoder) u32(n *yamlpos.Node, what string) uint32 { return uint32(d.num(n, what, 32)) }

func (d *decoder) duration(n *yamlpos.Node, what string) time.Duration {
	if n == nil {
		return 0
	}
	s := d.str(n, what)
	if s == "" {
		return 0
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		d.fail(n, "write a time such as 50ms, 2s or 1m30s", "%s %q is not a time", what, s)
		return 0
	}
	return v
}

// window parses "50ms" or "50ms..80ms".
func (d *decoder) window(n *yamlpos.Node, what string) (lo, hi time.Duration) {
	s := d.str(n, what)
	if s == "" {
		return 0, 0
	}
	a, b, ranged := strings.Cut(s, "..")
	hint := "write a time such as 50ms, or a window such as 50ms..80ms"
	lo, err := time.ParseDuration(strings.TrimSpace(a))
	if err != nil || lo < 0 {
		d.fail(n, hint, "%s %q is not a time or a window", what, s)
		return 0, 0
	}
	if !ranged {
		return lo, 0
	}
	hi, err = time.ParseDuration(strings.TrimSpace(b))
	if err != nil || hi < lo {
		d.fail(n, hint, "%s %q is not a window: its upper end must be a time no shorter than its lower end", what, s)
		return 0, 0
	}
	return lo, hi
}

func (d *decoder) regexp(n *yamlpos.Node, what string) *regexp.Regexp {
	s := d.str(n, what)
	if n == nil || s == "" && n.Kind == yamlpos.ScalarNode {
		if n != nil {
			d.fail(n, "give a pattern", "%s is empty", what)
		}
		return nil
	}
	re, err := regexp.Compile(s)
	if err != nil {
		msg := err.Error()
		if e := (*rsyntax.Error)(nil); errors.As(err, &e) {
			msg = e.Code.String() + ": " + e.Expr
		}
		d.fail(n, "write a Go regular expression (RE2 syntax); escape . ( ) [ ] with a backslash to match them literally", "%s %q is not a valid regular expression: %s", what, s, msg)
	}
	return re
}

func (d *decoder) recipe(r *Recipe, n *yamlpos.Node) {
	f, _ := d.fields(n, "the recipe", []string{"name", "version", "status", "protocol", "match", "strategies"},
		"serial", "console", "flash", "protected", "entry", "boot", "images", "diagnose", "validate", "options")
	r.Name = d.str(f["name"], "name")
	r.Version = int(d.num(f["version"], "version", 31))
	r.Status = Status(d.oneOf(f["status"], "status", string(Draft), string(Released)))
	r.Protocol = d.oneOf(f["protocol"], "protocol", Protocols...)
	if v := f["match"]; v != nil {
		m, _ := d.fields(v, "match", nil, "chip", "revisions", "model")
		r.Match = Match{Chip: d.u32(m["chip"], "match chip"), Revisions: d.strs(m["revisions"], "match revisions"),
			Model: d.str(m["model"], "match model"), Pos: d.pos(v)}
	}
	if v := f["serial"]; v != nil {
		s, _ := d.fields(v, "serial", []string{"baud"}, "parity", "flow")
		r.Serial = Serial{Baud: int(d.num(s["baud"], "serial baud", 31)), Parity: "none", Flow: "none", Pos: d.pos(v)}
		if s["parity"] != nil {
			r.Serial.Parity = d.oneOf(s["parity"], "serial parity", "none", "even", "odd")
		}
		if s["flow"] != nil {
			r.Serial.Flow, r.Serial.FlowPos = d.oneOf(s["flow"], "serial flow", "none", "rtscts"), d.pos(s["flow"])
		}
	}
	if v := f["console"]; v != nil {
		c, _ := d.fields(v, "console", []string{"baud"})
		r.Console = int(d.num(c["baud"], "console baud", 31))
	}
	if v := f["flash"]; v != nil {
		fl, _ := d.fields(v, "flash", []string{"start", "size"}, "page")
		r.Flash = Flash{Start: d.u32(fl["start"], "flash start"), Size: d.u32(fl["size"], "flash size"), Page: d.u32(fl["page"], "flash page"), Pos: d.pos(v)}
	}
	if v := f["protected"]; v != nil {
		for _, c := range d.list(v, "protected") {
			p, _ := d.fields(c, "a protected region", []string{"name", "start", "size"})
			r.Protected = append(r.Protected, Region{Name: d.str(p["name"], "protected name"),
				Start: d.u32(p["start"], "protected start"), Size: d.u32(p["size"], "protected size"), Pos: d.pos(c)})
		}
	}
	r.Entry = d.actions(f["entry"], "entry")
	r.Boot = d.actions(f["boot"], "boot")
	if v := f["images"]; v != nil {
		d.images(r, v)
	}
	if v := f["strategies"]; v != nil {
		for _, c := range d.list(v, "strategies") {
			s, _ := d.fields(c, "a strategy", []string{"name", "steps"})
			st := Strategy{Name: d.str(s["name"], "strategy name"), Pos: d.pos(c)}
			for _, sn := range d.list(s["steps"], "steps") {
				if step, ok := d.step(sn, false); ok {
					st.Steps = append(st.Steps, step)
				}
			}
			r.Strategies = append(r.Strategies, st)
		}
		if len(r.Strategies) == 0 {
			d.fail(v, "add at least one strategy with its steps", "the recipe has no strategies")
		}
	}
	if v := f["diagnose"]; v != nil {
		for _, c := range d.list(v, "diagnose") {
			g, _ := d.fields(c, "a diagnosis rule", []string{"pattern", "class"}, "hint")
			r.Diagnose = append(r.Diagnose, Diagnosis{Pattern: d.regexp(g["pattern"], "diagnosis pattern"),
				Class: d.str(g["class"], "diagnosis class"), Hint: d.str(g["hint"], "diagnosis hint"), Pos: d.pos(c)})
		}
	}
	if v := f["validate"]; v != nil {
		g, _ := d.fields(v, "validate", nil, "version", "image", "within", "checks")
		r.Validate = Validation{Image: d.str(g["image"], "validate image"), Within: d.duration(g["within"], "validate within"), Pos: d.pos(v)}
		if g["version"] != nil {
			r.Validate.Version = d.regexp(g["version"], "validate version")
			if re := r.Validate.Version; re != nil && re.NumSubexp() < 1 {
				d.fail(g["version"], `capture the version in a group, e.g. 'firmware v(\S+)'`, "validate version %q captures nothing", re)
			}
		}
		for _, c := range d.list(g["checks"], "checks") {
			if step, ok := d.step(c, true); ok {
				r.Validate.Checks = append(r.Validate.Checks, step)
			}
		}
	}
	if v := f["options"]; v != nil {
		d.options(r, v)
	}
}

// options reads the driver options as text with their places: which keys
// a protocol takes, and their types and ranges, are the driver's to say
// (jobs.CheckOptions, run by every loader of recipes that runs them).
func (d *decoder) options(r *Recipe, n *yamlpos.Node) {
	if n.Kind != yamlpos.MappingNode {
		d.fail(n, "write options as name: value lines", "options must be a mapping, not %s", kindName(n))
		return
	}
	r.Options, r.OptionKeys, r.OptionValues = map[string]string{}, map[string]Pos{}, map[string]Pos{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if p, dup := r.OptionKeys[k.Value]; dup {
			d.fail(k, "remove one of them", "option %q appears twice (first on line %d)", k.Value, p.Line)
			continue
		}
		if v.Kind != yamlpos.ScalarNode || v.Tag == "!!null" {
			d.fail(v, "write the option's value after its name: name: value", "option %s must be a value, not %s", k.Value, kindName(v))
			continue
		}
		r.Options[k.Value], r.OptionKeys[k.Value], r.OptionValues[k.Value] = v.Value, d.pos(k), d.pos(v)
	}
}

func (d *decoder) list(n *yamlpos.Node, what string) []*yamlpos.Node {
	if n == nil {
		return nil
	}
	if n.Kind != yamlpos.SequenceNode {
		d.fail(n, "write a list, each item starting with '- '", "%s must be a list, not %s", what, kindName(n))
		return nil
	}
	return n.Content
}

func (d *decoder) actions(n *yamlpos.Node, what string) []Action {
	var out []Action
	for _, c := range d.list(n, what) {
		a := Action{Pos: d.pos(c)}
		f, keys := d.fields(c, "an "+what+" action", nil, "line", "level", "wait", "pulse", "for", "modem")
		var kinds []string
		for _, k := range []string{"line", "wait", "pulse", "modem"} {
			if f[k] != nil {
				kinds = append(kinds, k)
			}
		}
		if len(kinds) != 1 {
			if c.Kind == yamlpos.MappingNode {
				d.fail(c, "each action has one of line (with level), wait, pulse (with for) or modem",
					"an %s action must have exactly one of line, wait, pulse or modem, not %d", what, len(kinds))
			}
			continue
		}
		allowed := map[string][]string{"line": {"level"}, "pulse": {"for"}}[kinds[0]]
		for k, kn := range keys {
			if k != kinds[0] && !slices.Contains(allowed, k) {
				d.fail(kn, fmt.Sprintf("a %s action takes %s", kinds[0], strings.Join(append([]string{kinds[0]}, allowed...), ", ")), "key %q does not belong in a %s action", k, kinds[0])
			}
		}
		switch kinds[0] {
		case "line":
			a.Kind, a.Line = ActSet, d.oneOf(f["line"], "line", Lines...)
			if f["level"] == nil {
				d.fail(c, "add level: asserted or level: released", "a line action needs a level")
			}
			a.Asserted = d.oneOf(f["level"], "level", "asserted", "released") == "asserted"
		case "wait":
			a.Kind = ActWait
			a.Wait, a.Max = d.window(f["wait"], "wait")
		case "pulse":
			a.Kind, a.Line = ActPulse, d.oneOf(f["pulse"], "pulse", Lines...)
			if f["for"] == nil {
				d.fail(c, "add for: 10ms", "a pulse action needs for: (how long the line is asserted)")
			}
			a.Wait = d.duration(f["for"], "pulse for")
		case "modem":
			a.Kind, a.Modem = ActModem, d.oneOf(f["modem"], "modem", "classic", "unix-tight")
		}
		out = append(out, a)
	}
	return out
}

func (d *decoder) images(r *Recipe, n *yamlpos.Node) {
	if n.Kind != yamlpos.MappingNode {
		d.fail(n, "write images as name: {file: ..., sha256: ...}", "images must be a mapping of names to images, not %s", kindName(n))
		return
	}
	dir := filepath.Dir(r.File)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if r.Image(k.Value) != nil {
			d.fail(k, "give each image its own name", "image %q is defined twice", k.Value)
			continue
		}
		what := fmt.Sprintf("image %q", k.Value)
		f, keys := d.fields(v, what, []string{"file", "sha256", "version"}, "signature", "purpose", "revisions", "address", "format", "fill")
		im := &ImageSpec{Name: k.Value, File: d.str(f["file"], "image file"), SHA256: strings.ToLower(d.str(f["sha256"], "image sha256")),
			Version: d.str(f["version"], "image version"), Revisions: d.strs(f["revisions"], "image revisions"), Fill: 0xFF, Pos: d.pos(k)}
		if im.File != "" {
			im.Path = filepath.Join(dir, filepath.FromSlash(im.File))
		}
		if s := d.str(f["signature"], "image signature"); s != "" {
			im.Signature, im.SigFile = filepath.Join(dir, filepath.FromSlash(s)), s
		}
		if f["purpose"] != nil {
			im.Purpose = firmware.Purpose(d.oneOf(f["purpose"], "image purpose", string(firmware.Factory), string(firmware.App), string(firmware.Recovery)))
		}
		if f["format"] != nil {
			im.Format = firmware.Format(d.oneOf(f["format"], "image format", string(firmware.Raw), string(firmware.Hex), string(firmware.ELF)))
		}
		if f["address"] != nil {
			im.Addr, im.HasAddr = d.u32(f["address"], "image address"), true
		}
		if f["fill"] != nil {
			im.Fill = byte(d.num(f["fill"], "image fill", 8))
		}
		if sh := f["sha256"]; sh != nil && im.SHA256 != "" && !isHash(im.SHA256) {
			d.fail(sh, "copy the 64 hex digits sha256sum prints for the bytes written", "image sha256 %q is not 64 hex digits", im.SHA256)
		}
		for key, dst := range map[string]*Pos{"file": &im.FilePos, "sha256": &im.SHAPos, "signature": &im.SigPos, "address": &im.AddrPos} {
			if v := f[key]; v != nil {
				*dst = d.pos(v)
			} else {
				*dst = im.Pos
			}
		}
		_ = keys
		r.Images = append(r.Images, im)
	}
}

func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

func stepNames() string {
	var s []string
	for _, k := range StepKinds {
		s = append(s, string(k))
	}
	return strings.Join(s, ", ")
}

// step parses one step: a bare name (enter, reset, boot) or a mapping whose
// first key is the step's kind, by the kind's row in step.Table. checks
// limits it to the kinds that may be validation checks.
func (d *decoder) step(n *yamlpos.Node, checks bool) (Step, bool) {
	st := Step{Pos: d.pos(n)}
	var kindNode, val *yamlpos.Node
	params := map[string]*yamlpos.Node{}
	switch n.Kind {
	case yamlpos.ScalarNode:
		kindNode = n
	case yamlpos.MappingNode:
		if len(n.Content) == 0 {
			d.fail(n, "steps are "+stepNames(), "empty step")
			return st, false
		}
		kindNode, val = n.Content[0], n.Content[1]
	default:
		d.fail(n, "write a step as its name (- enter) or name: value (- write: app)", "a step must be a name or a mapping, not %s", kindName(n))
		return st, false
	}
	st.Kind = StepKind(kindNode.Value)
	spec, ok := step.Lookup(st.Kind)
	if !ok {
		d.fail(kindNode, "steps are "+stepNames(), "unknown step %q", kindNode.Value)
		return st, false
	}
	if checks && !spec.Check {
		d.fail(kindNode, "a check is send (with expect) or expect", "step %q cannot be a validation check", st.Kind)
		return st, false
	}
	if n.Kind == yamlpos.MappingNode {
		for i := 2; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			switch {
			case !slices.Contains(spec.Params, k.Value) && slices.Contains(StepKinds, StepKind(k.Value)):
				d.fail(k, "start a new step with '- '", "step %q and step %q in one item", st.Kind, k.Value)
			case !slices.Contains(spec.Params, k.Value):
				hint := "step " + string(st.Kind) + " takes no other keys"
				if len(spec.Params) > 0 {
					hint = "step " + string(st.Kind) + " also takes " + strings.Join(spec.Params, ", ")
				}
				d.fail(k, hint, "unknown key %q in step %s", k.Value, st.Kind)
			case params[k.Value] != nil:
				d.fail(k, "remove one of them", "key %q appears twice in step %s", k.Value, st.Kind)
			default:
				params[k.Value] = n.Content[i+1]
			}
		}
	}
	needs := func(what string) bool {
		if val == nil || val.Tag == "!!null" {
			d.fail(kindNode, "write it as "+string(st.Kind)+": "+what, "step %s needs %s", st.Kind, what)
			return false
		}
		return true
	}
	what := "step " + string(st.Kind)
	switch spec.Value {
	case step.NoValue:
		if val != nil && val.Tag != "!!null" {
			d.fail(val, "write it as - "+string(st.Kind), "step %s takes no value", st.Kind)
		}
	case step.ImageName:
		if needs("an image name") {
			st.Image = d.str(val, what)
		}
	case step.Name:
		if needs("the backup's name") {
			st.Name = d.str(val, string(st.Kind)+" name")
		}
	case step.PoolName:
		if needs("a pool name") {
			st.Pool = d.str(val, string(st.Kind)+" pool")
		}
	case step.SlotName:
		if needs("a slot name") {
			st.Slot = d.str(val, string(st.Kind))
		}
	case step.Duration:
		if needs("a time") {
			st.Within = d.duration(val, string(st.Kind))
		}
	case step.Pattern:
		if needs("a pattern") {
			st.Expect = d.regexp(val, string(st.Kind))
		}
	case step.Text:
		if needs("the text to send") {
			st.Send = d.str(val, string(st.Kind))
		}
	case step.EraseWhat:
		if val != nil && val.Kind == yamlpos.ScalarNode && val.Value == "all" {
			st.All = true
			if len(params) > 0 {
				d.fail(kindNode, "erase: all takes no start, size or pages", "erase all with a region")
			}
			return st, true
		}
		if val != nil && val.Tag != "!!null" {
			d.fail(val, "write erase: all, or erase: with start: and size: (or pages: 4..63) below it", "erase %s: want all or nothing", kindName(val))
		}
		if (params[step.ParamPages] != nil) == (params[step.ParamStart] != nil || params[step.ParamSize] != nil) ||
			params[step.ParamPages] == nil && (params[step.ParamStart] == nil || params[step.ParamSize] == nil) {
			d.fail(kindNode, "give start: and size:, or pages: 4..63", "erase needs a region: all, start and size, or pages")
		}
	}
	var missing []string
	for _, k := range spec.Required {
		if params[k] == nil {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		d.fail(kindNode, "add "+strings.Join(missing, ": and ")+": below "+string(st.Kind),
			"%s needs %s", st.Kind, strings.Join(missing, " and "))
	}
	// Each key means one thing in every step that takes it.
	if v := params[step.ParamStart]; v != nil {
		st.Region.Start = d.u32(v, string(st.Kind)+" start")
	}
	if v := params[step.ParamSize]; v != nil {
		st.Region.Size = d.u32(v, string(st.Kind)+" size")
	}
	if v := params[step.ParamPages]; v != nil {
		st.FirstPage, st.Pages = d.pages(v)
	}
	if v := params[step.ParamAddress]; v != nil {
		st.Addr = d.u32(v, string(st.Kind)+" address")
	}
	if v := params[step.ParamExpect]; v != nil {
		st.Expect = d.regexp(v, string(st.Kind)+" expect")
	}
	if v := params[step.ParamWithin]; v != nil {
		st.Within = d.duration(v, string(st.Kind)+" within")
	}
	if spec.Check && st.Within == 0 {
		st.Within = 5 * time.Second
	}
	return st, true
}

// pagesRange parses "4..63" (pages 4 to 63 inclusive) into a page range;
// validate converts it to addresses with the flash's page size.
func (d *decoder) pages(n *yamlpos.Node) (first, count uint32) {
	s := d.str(n, "erase pages")
	a, b, ok := strings.Cut(s, "..")
	lo, err1 := strconv.ParseUint(strings.TrimSpace(a), 0, 16)
	hi, err2 := strconv.ParseUint(strings.TrimSpace(b), 0, 16)
	if !ok || err1 != nil || err2 != nil || hi < lo {
		if s != "" {
			d.fail(n, "write pages: FIRST..LAST, e.g. 4..63", "erase pages %q is not a page range", s)
		}
		return 0, 0
	}
	return uint32(lo), uint32(hi - lo + 1)
}

// Closest returns the known key within two edits of key (a misspelling),
// or "".
func Closest(key string, known []string) string { return closest(key, known) }

// closest returns the known key within two edits of key (a misspelling), or
// "".
func closest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), k); d < bestD || (strings.HasPrefix(key, k) && len(k) >= 3 && bestD > 2) {
			best, bestD = k, min(d, 2)
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
