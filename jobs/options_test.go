package jobs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unbrick/unbrick/recipes"
)

// TestFromRecipeChecksOptions checks that a recipe whose driver options
// its driver cannot take never becomes a plan: the error names the place
// in the file, before any unit is powered (a bad value used to fail at
// connect, as the station's fault).
func TestFromRecipeChecksOptions(t *testing.T) {
	for _, c := range []struct {
		name, old, new, at, want string // at: the text on the line the error names
	}{
		{"value of the wrong type", `mmcdev: "0"`, `mmcdev: zero`, "mmcdev: zero", `option mmcdev "zero" is not a whole number`},
		{"value out of range", `mmcdev: "0"`, `mmcdev: 99`, "mmcdev: 99", `option mmcdev "99" is outside 0..15`},
		{"bad duration", `observe: 8s`, `observe: soon`, "observe: soon", `option observe "soon" is not a duration`},
		{"unknown option", `mmcdev: "0"`, "mmcdev: \"0\"\n  flash_baud: 921600", "flash_baud", `unknown option "flash_baud" for protocol uboot`},
		{"flow control", "  baud: 115200\n", "  baud: 115200\n  flow: rtscts\n", "flow: rtscts", `serial flow "rtscts": the uboot driver cannot honour it`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := copyRecipe(t, "uboot-hmi-a.yaml")
			path := filepath.Join(dir, "uboot-hmi-a.yaml")
			editFile(t, path, c.old, c.new)
			r, errs := recipes.Load(path)
			if r == nil || len(errs) > 0 {
				t.Fatalf("Load = %v", errs)
			}
			p, err := FromRecipe(r, nil)
			if err == nil || p != nil {
				t.Fatalf("FromRecipe = %v, nil error; want %s", p, c.want)
			}
			b, _ := os.ReadFile(path)
			line := 0
			for i, l := range strings.Split(string(b), "\n") {
				if strings.Contains(l, c.at) && line == 0 {
					line = i + 1
				}
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), fmt.Sprintf("%s:%d:", path, line)) || !strings.Contains(err.Error(), "(hint: ") {
				t.Errorf("FromRecipe error = %q, want %q at %s:%d: with a hint", err, c.want, path, line)
			}
		})
	}
}

func TestDeclaredOptions(t *testing.T) {
	for _, proto := range recipes.Protocols {
		d, ok := Declared(proto)
		if !ok {
			t.Errorf("Declared(%s): the driver declares nothing", proto)
			continue
		}
		seen := map[string]bool{}
		for _, o := range d.Options {
			if seen[o.Name] || o.Doc == "" || o.Type == "" {
				t.Errorf("%s option %+v: twice, or without type or doc", proto, o)
			}
			seen[o.Name] = true
			if o.Default != "" && o.Type != TypeInteger && o.Type != TypeAddress {
				if p, _ := o.Check(o.Default); p != "" {
					t.Errorf("%s option %s: its default %q %s", proto, o.Name, o.Default, p)
				}
			}
		}
	}
}
