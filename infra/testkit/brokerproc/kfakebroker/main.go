// Command kfakebroker is a one-broker Kafka (franz-go's kfake) in a process
// of its own, for tests and the fault-injection suite: killing it with
// SIGKILL is a broker dying for real (the port refuses connections, requests
// in flight get no answer), SIGSTOP a broker that accepts and never answers,
// and starting it again on the same port a cluster restarted empty (the
// seeded topics come back with new topic IDs). It is never part of the
// processor's binary.
//
// It prints "listening <host:port>[,<host:port>...]" on stdout once it
// serves, then answers each line of stdin (a fault command, see command in
// control.go) with one line on stdout, and exits when its stdin closes (the
// harness that started it is gone) or on SIGTERM.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	port := flag.Int("port", 0, "port on 127.0.0.1 (0: any free port)")
	portList := flag.String("ports", "", "comma-separated ports, one broker each (overrides -port)")
	seed := flag.Uint64("seed", 1, "seed of the fault draws (which produce requests fail or are held)")
	topics := flag.String("topics", "", "comma-separated topics created at start")
	partitions := flag.Int("partitions", 3, "partitions of each seeded or auto-created topic")
	flag.Parse()

	ports := []int{*port}
	if *portList != "" {
		ports = ports[:0]
		for _, p := range strings.Split(*portList, ",") {
			n, err := strconv.Atoi(p)
			if err != nil {
				fmt.Fprintf(os.Stderr, "kfakebroker: -ports %q: %v\n", *portList, err)
				os.Exit(2)
			}
			ports = append(ports, n)
		}
	}
	// Topics the producer creates by itself (a seeded topic deleted and
	// not created again yet) get the seeded partition count too: kfake's
	// own default (10) would change the topic's layout under the test.
	opts := []kfake.Opt{kfake.NumBrokers(len(ports)), kfake.Ports(ports...), kfake.AllowAutoTopicCreation(),
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
	f := installFaults(c, ports, *seed)
	fmt.Printf("listening %s\n", strings.Join(c.ListenAddrs(), ","))

	stdinClosed := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			fmt.Println(f.command(sc.Text()))
		}
		close(stdinClosed)
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	select {
	case <-sig:
	case <-stdinClosed:
	}
}
