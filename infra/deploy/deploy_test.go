// Package deploy holds the deployment files (docker-compose.yml,
// Dockerfile, hobom.env.example); its tests check them without a Docker
// engine.
package deploy

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/infra/config"
)

// TestComposeConfigValidates runs `docker compose config`, which parses and
// validates the file without an engine. It needs the docker client with its
// compose plugin and is skipped without them.
func TestComposeConfigValidates(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("docker client not installed: cannot run `docker compose config`")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "compose", "version").CombinedOutput(); err != nil {
		t.Skipf("the docker client has no compose plugin (`docker compose version`: %v, %s): cannot validate docker-compose.yml here",
			err, bytes.TrimSpace(out))
	}
	cmd := exec.CommandContext(ctx, "docker", "compose", "-f", "docker-compose.yml", "config", "--quiet")
	cmd.Env = append(os.Environ(), "COMPOSE_PROJECT_NAME=hobom-test")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker compose config: %v\n%s", err, out)
	}
}

// TestEnvExampleListsEverySetting keeps hobom.env.example in step with the
// settings table.
func TestEnvExampleListsEverySetting(t *testing.T) {
	var usage bytes.Buffer
	config.Usage(&usage, "hobom-event-processor")
	names := regexp.MustCompile(`HOBOM_[A-Z0-9_]+`).FindAllString(usage.String(), -1)
	settings := map[string]bool{}
	for _, n := range names {
		settings[n] = true
	}
	example, err := os.ReadFile("hobom.env.example")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#? ?(HOBOM_[A-Z0-9_]+)=`).FindAllStringSubmatch(string(example), -1) {
		listed[m[1]] = true
	}
	for n := range settings {
		if !listed[n] {
			t.Errorf("hobom.env.example lacks %s", n)
		}
	}
	for n := range listed {
		if !settings[n] {
			t.Errorf("hobom.env.example lists %s, which is not a setting", n)
		}
	}
}

// TestDeployFilesShape checks what the issue asks of the files, as far as
// reading them can tell.
func TestDeployFilesShape(t *testing.T) {
	compose := read(t, "docker-compose.yml")
	for _, want := range []string{
		"KAFKA_PROCESS_ROLES: broker,controller",
		"KAFKA_ADVERTISED_LISTENERS: INTERNAL://kafka:19092,EXTERNAL://localhost:9092",
		`"--appendonly", "yes"`,
		"redis-data:/data",
		"HOBOM_KAFKA_BROKER: kafka:19092",
		"dockerfile: infra/deploy/Dockerfile",
	} {
		if !strings.Contains(compose, want) {
			t.Errorf("docker-compose.yml lacks %q", want)
		}
	}
	if strings.Contains(strings.ToLower(compose), "zookeeper:") || strings.Contains(compose, "KAFKA_ZOOKEEPER") {
		t.Error("docker-compose.yml uses ZooKeeper")
	}
	df := read(t, "Dockerfile")
	froms := regexp.MustCompile(`(?m)^FROM `).FindAllStringIndex(df, -1)
	if len(froms) < 2 {
		t.Errorf("Dockerfile has %d stages, want a multi-stage build", len(froms))
	}
	last := df[froms[len(froms)-1][0]:]
	if !strings.Contains(last, ":nonroot") || !regexp.MustCompile(`(?m)^USER nonroot`).MatchString(last) {
		t.Error("the final image does not run as non-root")
	}
	if !slices.ContainsFunc(strings.Split(df, "\n"), func(l string) bool { return strings.Contains(l, "CGO_ENABLED=0") }) {
		t.Error("the binary is not static (CGO_ENABLED=0) for distroless/static")
	}
}

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
