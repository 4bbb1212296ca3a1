package loadtest

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func pid() int { return os.Getpid() }

// freeMemory returns what a dropped backend or run held, so that the next
// scenario starts from the same baseline.
func freeMemory() { debug.FreeOSMemory() }

// cpuTime is the CPU this process used so far (user + system), from
// getrusage.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procStatus reads a kB field of /proc/self/status (VmRSS, VmHWM) in
// bytes; 0 where there is no /proc.
func procStatus(field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}

// resetPeakRSS resets VmHWM to the current RSS (Linux: clear_refs 5), so
// each scenario reports its own peak; false where that is not possible.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

var heapMetrics = []metrics.Sample{
	{Name: "/memory/classes/heap/objects:bytes"}, // live and not yet swept dead objects
	{Name: "/sched/goroutines:goroutines"},
	{Name: "/gc/heap/live:bytes"}, // live heap marked by the last GC
}

// heapNow returns the heap objects' bytes, the goroutines and the live
// heap of the last GC.
func heapNow() (heap uint64, goroutines uint64, live uint64) {
	s := make([]metrics.Sample, len(heapMetrics))
	copy(s, heapMetrics)
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64(), s[2].Value.Uint64()
}

// liveHeapAfterGC forces a collection and returns the heap left.
func liveHeapAfterGC() uint64 {
	runtime.GC()
	runtime.GC() // finalizers and sweeping of the first cycle
	h, _, _ := heapNow()
	return h
}

func selfUsage() ProcUsage {
	h, _, _ := heapNow()
	return ProcUsage{CPU: cpuTime(), RSSBytes: procStatus("VmRSS"), HeapBytes: h}
}

// Peaks are the highest values a sampler saw.
type Peaks struct {
	HeapBytes  uint64 `json:"peakHeapBytes"`
	RSSBytes   int64  `json:"peakRSSBytes"`
	Goroutines uint64 `json:"peakGoroutines"`
}

// sampler records peak heap, RSS and goroutines every interval while a
// scenario runs; it also keeps a heap profile taken near the heap peak
// when profiling is on.
type sampler struct {
	interval time.Duration
	profile  bool
	stop     chan struct{}
	done     chan struct{}

	mu      sync.Mutex
	peaks   Peaks
	hwm     bool
	heapPro []byte
	proAt   uint64
}

func startSampler(interval time.Duration, profile bool) *sampler {
	s := &sampler{interval: interval, profile: profile, stop: make(chan struct{}), done: make(chan struct{})}
	s.hwm = resetPeakRSS()
	s.sample()
	go s.loop()
	return s
}

func (s *sampler) loop() {
	defer close(s.done)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			s.sample()
			return
		case <-t.C:
			s.sample()
		}
	}
}

func (s *sampler) sample() {
	heap, g, _ := heapNow()
	rss := procStatus("VmRSS")
	s.mu.Lock()
	s.peaks.HeapBytes = max(s.peaks.HeapBytes, heap)
	s.peaks.Goroutines = max(s.peaks.Goroutines, g)
	s.peaks.RSSBytes = max(s.peaks.RSSBytes, rss)
	snap := s.profile && heap > s.proAt+s.proAt/4
	if snap {
		s.proAt = heap
	}
	s.mu.Unlock()
	if snap {
		var buf bytes.Buffer
		if err := pprof.Lookup("heap").WriteTo(&buf, 0); err == nil {
			s.mu.Lock()
			s.heapPro = buf.Bytes()
			s.mu.Unlock()
		}
	}
}

// finish stops sampling and returns the peaks; RSS is the kernel's VmHWM
// when it could be reset at the start, else the highest sampled VmRSS.
func (s *sampler) finish() Peaks {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hwm {
		s.peaks.RSSBytes = max(s.peaks.RSSBytes, procStatus("VmHWM"))
	}
	return s.peaks
}

// heapProfile is the heap profile taken nearest the peak, nil if none.
func (s *sampler) heapProfile() ([]byte, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.heapPro, s.proAt
}

// machineBusy is the CPU time all processes of the machine used so far
// (every non-idle column of /proc/stat's cpu line); 0 without /proc.
func machineBusy() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is counted in user already
			break
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// clockTicks is USER_HZ, 100 on every Linux the load test runs on.
const clockTicks = 100

// othersCores is the CPU other processes used during took, in cores: the
// machine's busy time minus this process's and the world's.
func othersCores(busy, ours, took time.Duration) float64 {
	if busy <= 0 || took <= 0 {
		return 0
	}
	return max(0, (busy-ours).Seconds()/took.Seconds())
}

// usage measures this process, the world and the rest of the machine over
// an interval.
type usage struct {
	r           *runner
	cpu0, busy0 time.Duration
	world0      ProcUsage
	t0          time.Time
}

func (r *runner) startUsage() *usage {
	w, _ := r.world.Usage()
	return &usage{r: r, cpu0: cpuTime(), busy0: machineBusy(), world0: w, t0: time.Now()}
}

// finish returns this process's CPU, the world's and the other processes'
// cores since start.
func (u *usage) finish() (cpu, world time.Duration, others float64) {
	took := time.Since(u.t0)
	cpu = cpuTime() - u.cpu0
	w, _ := u.r.world.Usage()
	world = w.CPU - u.world0.CPU
	if u.r.opts.InProcess {
		world = 0 // counted in cpu already
	}
	return cpu, world, othersCores(machineBusy()-u.busy0, cpu+world, took)
}

func perEventMicros(d time.Duration, n int) float64 {
	if n <= 0 {
		return 0
	}
	return float64(d.Nanoseconds()) / 1e3 / float64(n)
}

// allocs is the bytes and objects this process allocated so far.
func allocs() (bytes, objects uint64) {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/allocs:objects"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}
