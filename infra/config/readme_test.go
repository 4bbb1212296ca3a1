package config

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEListsEverySetting keeps the README's configuration table in step
// with the settings table: operators read the README, not the code.
func TestREADMEListsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settings() {
		row := "| `" + s.env + "` | `--" + s.flag + "` |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README.md has no configuration row for %s (--%s)", s.env, s.flag)
		}
	}
}
