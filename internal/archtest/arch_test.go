// Package archtest holds tests about the shape of the whole module: every
// package has a doc comment, imports go one way, as ARCHITECTURE.md lays out
// (protocol code knows nothing of jobs or the web; recipes and the step
// vocabulary know nothing of drivers; only station and cmd wire everything
// together), and no file of the job layer grows past what can be read at
// once.
package archtest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/unbrick/unbrick"

type pkg struct {
	ImportPath string
	Name       string
	Doc        string
	Imports    []string
	GoFiles    []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 5 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

func TestEveryPackageHasADocComment(t *testing.T) {
	for _, p := range listPackages(t) {
		if len(p.GoFiles) == 0 {
			continue
		}
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("package %s has no doc comment saying what it is for", p.ImportPath)
		}
	}
}

// rule says which module packages a package (by prefix) may import.
type rule struct {
	pkg   string   // import path below the module, e.g. "bootloader/"
	allow []string // module paths (prefixes) it may import; stdlib and third-party are checked by thirdParty
	// thirdParty lists the only non-stdlib, non-module imports allowed; nil means any.
	thirdParty []string
}

var rules = []rule{
	{pkg: "bootloader", allow: []string{"bootloader"}, thirdParty: []string{}},
	{pkg: "firmware", allow: []string{"firmware"}, thirdParty: []string{"aead.dev/minisign"}},
	{pkg: "internal/yamlpos", allow: []string{"internal/yamlpos"}, thirdParty: []string{"github.com/goccy/go-yaml"}},
	{pkg: "step", allow: []string{"step", "internal/yamlpos"}, thirdParty: []string{}},
	{pkg: "recipes", allow: []string{"recipes", "firmware", "step", "internal/yamlpos"}, thirdParty: []string{}},
	{pkg: "db", allow: []string{"db"}, thirdParty: []string{"github.com/mattn/go-sqlite3"}},
	{pkg: "serialport", allow: []string{"serialport", "bootloader"}, thirdParty: []string{"go.bug.st/serial", "golang.org/x/sys"}},
	{pkg: "fixtures", allow: []string{"fixtures", "gpio", "internal/yamlpos"}, thirdParty: []string{}},
	{pkg: "gpio", allow: []string{"gpio"}},
	{pkg: "sim", allow: []string{"sim", "bootloader", "gpio"}},
	{pkg: "jobs", allow: []string{"jobs", "bootloader", "recipes", "step", "firmware", "gpio", "serialport", "fixtures"}},
	{pkg: "web", allow: []string{"web", "jobs"}},
}

func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

func TestImportsGoOneWay(t *testing.T) {
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		for _, imp := range p.Imports {
			if under(imp, module+"/station") && !under(rel, "station") && !under(rel, "cmd") {
				t.Errorf("%s imports %s: only cmd may import the station", rel, imp)
			}
			if under(imp, module+"/cmd") {
				t.Errorf("%s imports %s: nothing imports a command", rel, imp)
			}
		}
		for _, r := range rules {
			if !under(rel, r.pkg) {
				continue
			}
			for _, imp := range p.Imports {
				if strings.HasPrefix(imp, module+"/") {
					irel := strings.TrimPrefix(imp, module+"/")
					ok := false
					for _, a := range r.allow {
						ok = ok || under(irel, a)
					}
					if !ok {
						t.Errorf("%s imports %s: %s may import only %v of this module", rel, irel, r.pkg, r.allow)
					}
					continue
				}
				if r.thirdParty == nil || !strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
					continue // standard library, or any third party allowed
				}
				ok := false
				for _, a := range r.thirdParty {
					ok = ok || under(imp, a)
				}
				if !ok {
					t.Errorf("%s imports %s: %s may import only the standard library and %v", rel, imp, r.pkg, r.thirdParty)
				}
			}
			break
		}
	}
}

// TestJobFilesAreSmall keeps every file of the job layer readable at once
// (issue 10: the runner had grown to a thousand lines).
func TestJobFilesAreSmall(t *testing.T) {
	files, err := filepath.Glob("../../jobs/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no files in jobs: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(b, []byte("\n")); n > 400 {
			t.Errorf("%s has %d lines, want at most 400: split it along a seam (see ARCHITECTURE.md)", filepath.Base(f), n)
		}
	}
}
