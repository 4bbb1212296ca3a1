package main_test

import (
	"bufio"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
)

// binary is hobom-dev built once for these tests.
var binary string

func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithBinary(m, "hobom-dev", &binary))
}

// TestDevStartsPrintsTheBannerAndStopsOnInterrupt is `make dev` as a
// newcomer sees it: the banner on stdout, a working API, and Ctrl-C
// (SIGINT) ending the process with status 0. --embedded, which the dev
// mode was once started with, is still accepted.
func TestDevStartsPrintsTheBannerAndStopsOnInterrupt(t *testing.T) {
	kafkaPort := testenv.FreePort(t)
	cmd := exec.Command(binary, "--embedded")
	cmd.Env = testenv.ChildEnv(
		"HOBOM_HTTP_ADDR=127.0.0.1:0",
		"HOBOM_DEV_KAFKA_PORT="+strconv.Itoa(kafkaPort),
		"HOBOM_DEV_EVENT_RATE=20",
		"HOBOM_LOG_LEVEL=warn",
		"HOBOM_LOG_FORMAT=json",
	)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var banner []string
	base := ""
	deadline := time.After(60 * time.Second)
	httpRe := regexp.MustCompile(`^  http\s+(http://\S+)`)
	for base == "" || !strings.HasPrefix(banner[len(banner)-1], "Ctrl-C") {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("stdout closed before the banner ended: %q\nstderr:\n%s", banner, stderr.String())
			}
			banner = append(banner, l)
			if m := httpRe.FindStringSubmatch(l); m != nil {
				base = m[1]
			}
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatalf("no banner: %q", banner)
		}
	}
	text := strings.Join(banner, "\n")
	for _, want := range []string{"127.0.0.1:" + strconv.Itoa(kafkaPort), "curl -s " + base + "/health", "/dlq/retry/dlq:menu:demo-", "kcat -b"} {
		if !strings.Contains(text, want) {
			t.Errorf("banner lacks %q:\n%s", want, text)
		}
	}
	resp, err := http.Get(base + "/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/health: %v %v", resp, err)
	}
	resp.Body.Close()

	go func() { exited <- cmd.Wait() }()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGINT: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(45 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("no exit after SIGINT; stderr:\n%s", stderr.String())
	}
	if strings.Contains(stderr.String(), `"level":"error"`) {
		t.Errorf("errors logged:\n%s", stderr.String())
	}
}
