package recipes

import (
	"path/filepath"
	"testing"

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
