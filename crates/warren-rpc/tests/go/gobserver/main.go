// A Go net/rpc server with gob, Go's standard library only, for warren's Protocol::GoGob
// client to call. Run by crates/warren-rpc/tests/go_gob.rs.
//
// Usage: gobserver http|plain SOCKET
//
// It prints "listening" once the socket accepts connections, and serves until its stdin closes;
// then it removes the socket and exits. With SOCKET "-" it is a warren child: it listens on
// WARREN_ENDPOINT (unix:PATH) and serves until SIGTERM (crates/warren-cli/tests/go_child.rs).
package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/rpc"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

type Todo struct{ ID string }

type Item struct {
	N     uint64
	Label string
}

type Inner struct {
	Level int64
	Ratio float64
	Ok    bool
	Items []Item
}

type Doc struct {
	Name   string
	Tags   []string
	Counts map[string]int
	Blob   []byte
	Inner  Inner
	Ptr    *string
	Empty  []string
}

type Task struct {
	mu       sync.Mutex
	arrived  int
	gathered chan struct{}
}

const gather = 64

func (t *Task) Get(id string, reply *Todo) error {
	*reply = Todo{ID: id}
	return nil
}

func (t *Task) Fail(id string, reply *Todo) error {
	return errors.New("no such todo: " + id)
}

func (t *Task) Echo(doc Doc, reply *Doc) error {
	*reply = doc
	return nil
}

// Gather answers once 64 calls have arrived, so it succeeds only for a client that has that
// many in flight at once.
func (t *Task) Gather(id string, reply *Todo) error {
	t.mu.Lock()
	t.arrived++
	if t.arrived == gather {
		close(t.gathered)
	}
	t.mu.Unlock()
	select {
	case <-t.gathered:
		*reply = Todo{ID: id}
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("the other calls never arrived")
	}
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gobserver http|plain SOCKET")
		os.Exit(2)
	}
	if err := rpc.Register(&Task{gathered: make(chan struct{})}); err != nil {
		panic(err)
	}
	path := os.Args[2]
	if path == "-" {
		path = strings.TrimPrefix(os.Getenv("WARREN_ENDPOINT"), "unix:")
	}
	listener, err := net.Listen("unix", path)
	if err != nil {
		panic(err)
	}
	if os.Args[1] == "http" {
		rpc.HandleHTTP()
		go http.Serve(listener, nil)
	} else {
		go rpc.Accept(listener)
	}
	fmt.Println("listening")
	if os.Args[2] == "-" {
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
		<-stop
	} else {
		io.Copy(io.Discard, os.Stdin)
	}
	listener.Close()
	os.Remove(path)
}
