// Command kfakebroker is a one-broker Kafka (franz-go's kfake) in a process
// of its own, for tests and the fault-injection suite: killing it with
// SIGKILL is a broker dying for real (the port refuses connections, requests
// in flight get no answer), SIGSTOP a broker that accepts and never answers,
// and starting it again on the same port a cluster restarted empty (the
// seeded topics come back with new topic IDs). It is never part of the
// processor's binary.
//
// It prints "listening <host:port>" on stdout once it serves, and exits when
// its stdin closes (the harness that started it is gone) or on SIGTERM.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	port := flag.Int("port", 0, "port on 127.0.0.1 (0: any free port)")
	topics := flag.String("topics", "", "comma-separated topics created at start")
	partitions := flag.Int("partitions", 3, "partitions of each seeded or auto-created topic")
	flag.Parse()

	// Topics the producer creates by itself (a seeded topic deleted and
	// not created again yet) get the seeded partition count too: kfake's
	// own default (10) would change the topic's layout under the test.
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(*port), kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(*partitions)}
	if *topics != "" {
		opts = append(opts, kfake.SeedTopics(int32(*partitions), strings.Split(*topics, ",")...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kfakebroker: %v\n", err)
		os.Exit(1)
	}
	defer c.Close()
	fmt.Printf("listening %s\n", c.ListenAddrs()[0])

	stdinClosed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
		close(stdinClosed)
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	select {
	case <-sig:
	case <-stdinClosed:
	}
}
