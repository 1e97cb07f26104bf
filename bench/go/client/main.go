// The Go net/rpc client of the benchmarks: the closed loop of
// crates/warren-bench/src/closed_loop.rs, in Go, with the same flags and the same JSON report.
// One connection (rpc.DialHTTP for gob, jsonrpc.Dial for json) shared by -callers goroutines.
//
// Usage: client -impl gob|json -socket PATH -workload tiny|echo4k|echo1m -callers C
//
//	-warmup-ms MS -window-ms MS -server-pid PID
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/rpc"
	"net/rpc/jsonrpc"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type Todo struct {
	ID string
}

const getID = "new_id"

type report struct {
	Impl          string `json:"impl"`
	Workload      string `json:"workload"`
	Callers       uint64 `json:"callers"`
	Calls         uint64 `json:"calls"`
	Errors        uint64 `json:"errors"`
	FirstError    string `json:"first_error,omitempty"`
	WindowNs      uint64 `json:"window_ns"`
	P50Ns         uint64 `json:"p50_ns"`
	P99Ns         uint64 `json:"p99_ns"`
	ClientCPUNs   uint64 `json:"client_cpu_ns"`
	ServerCPUNs   uint64 `json:"server_cpu_ns"`
	MachineBusyNs uint64 `json:"machine_busy_ns"`
	BytesPerCall  uint64 `json:"bytes_per_call"`
}

// processCPU is the CPU time of every live thread of pid, from /proc/PID/task/*/schedstat.
func processCPU(pid int) uint64 {
	paths, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var sum uint64
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		fields := strings.Fields(string(data))
		if len(fields) > 0 {
			ns, _ := strconv.ParseUint(fields[0], 10, 64)
			sum += ns
		}
	}
	return sum
}

// machineBusy is the busy time of all CPUs in ns, from /proc/stat.
func machineBusy() uint64 {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line := strings.SplitN(string(data), "\n", 2)[0]
	fields := strings.Fields(line)[1:]
	var busy uint64
	for i := 0; i < 8 && i < len(fields); i++ {
		if i == 3 || i == 4 {
			continue
		}
		v, _ := strconv.ParseUint(fields[i], 10, 64)
		busy += v
	}
	return busy * 10_000_000
}

type snapshot struct {
	at                      time.Time
	client, server, machine uint64
}

func take(serverPid int) snapshot {
	machine := machineBusy()
	client := processCPU(os.Getpid())
	var server uint64
	if serverPid != 0 {
		server = processCPU(serverPid)
	}
	return snapshot{time.Now(), client, server, machine}
}

func percentile(sorted []uint32, p float64) uint64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(float64(len(sorted)) * p))
	if rank < 1 {
		rank = 1
	}
	if rank > len(sorted) {
		rank = len(sorted)
	}
	return uint64(sorted[rank-1])
}

func main() {
	impl := flag.String("impl", "gob", "gob or json")
	socket := flag.String("socket", "", "the server's Unix socket")
	workload := flag.String("workload", "tiny", "tiny, echo4k or echo1m")
	callers := flag.Int("callers", 1, "concurrent callers on the one connection")
	warmupMs := flag.Int("warmup-ms", 300, "warm-up")
	windowMs := flag.Int("window-ms", 1000, "measured window")
	serverPid := flag.Int("server-pid", 0, "the server's pid, for its CPU time")
	flag.Parse()

	var client *rpc.Client
	var err error
	switch *impl {
	case "gob":
		client, err = rpc.DialHTTP("unix", *socket)
	case "json":
		client, err = jsonrpc.Dial("unix", *socket)
	default:
		err = errors.New("unknown -impl " + *impl)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
	defer client.Close()

	var size int
	switch *workload {
	case "tiny":
	case "echo4k":
		size = 4 * 1024
	case "echo1m":
		size = 1024 * 1024
	default:
		fmt.Fprintln(os.Stderr, "unknown workload", *workload)
		os.Exit(2)
	}
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i % 251)
	}
	call := func() error {
		if *workload == "tiny" {
			var todo Todo
			if err := client.Call("Task.Get", getID, &todo); err != nil {
				return err
			}
			if len(todo.ID) != len(getID) {
				return errors.New("wrong reply " + todo.ID)
			}
			return nil
		}
		var reply []byte
		if err := client.Call("Task.Echo", payload, &reply); err != nil {
			return err
		}
		if len(reply) != len(payload) {
			return fmt.Errorf("reply of %d bytes to %d sent", len(reply), len(payload))
		}
		return nil
	}
	// One checked call before the clock starts.
	if *workload == "tiny" {
		var todo Todo
		if err := client.Call("Task.Get", getID, &todo); err != nil || todo.ID != getID {
			fmt.Fprintln(os.Stderr, "client: first call:", err, todo.ID)
			os.Exit(1)
		}
	} else {
		var reply []byte
		if err := client.Call("Task.Echo", payload, &reply); err != nil || string(reply) != string(payload) {
			fmt.Fprintln(os.Stderr, "client: first echo:", err)
			os.Exit(1)
		}
	}

	var phase int32 // 0 warm-up, 1 window, 2 stop
	latencies := make([][]uint32, *callers)
	errs := make([]error, *callers)
	var wg sync.WaitGroup
	for i := 0; i < *callers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			lat := make([]uint32, 0, 65536)
			for atomic.LoadInt32(&phase) != 2 {
				start := time.Now()
				if err := call(); err != nil {
					errs[i] = err
					break
				}
				if atomic.LoadInt32(&phase) == 1 {
					ns := time.Since(start).Nanoseconds()
					if ns > 1<<32-1 {
						ns = 1<<32 - 1
					}
					lat = append(lat, uint32(ns))
				}
			}
			latencies[i] = lat
		}(i)
	}
	time.Sleep(time.Duration(*warmupMs) * time.Millisecond)
	start := take(*serverPid)
	atomic.StoreInt32(&phase, 1)
	time.Sleep(time.Duration(*windowMs) * time.Millisecond)
	end := take(*serverPid)
	atomic.StoreInt32(&phase, 2)
	wg.Wait()

	var all []uint32
	for _, lat := range latencies {
		all = append(all, lat...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	r := report{
		Impl:          *impl,
		Workload:      *workload,
		Callers:       uint64(*callers),
		Calls:         uint64(len(all)),
		WindowNs:      uint64(end.at.Sub(start.at).Nanoseconds()),
		P50Ns:         percentile(all, 0.50),
		P99Ns:         percentile(all, 0.99),
		ClientCPUNs:   end.client - start.client,
		ServerCPUNs:   end.server - start.server,
		MachineBusyNs: end.machine - start.machine,
		BytesPerCall:  uint64(size),
	}
	for _, err := range errs {
		if err != nil {
			r.Errors++
			if r.FirstError == "" {
				r.FirstError = err.Error()
			}
		}
	}
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
}
